/*
 * hello: the README's demo guest. Real mode from the reset vector: prints a
 * greeting on COM1 and powers off (bhyve exit status 1).
 */
#include "common.h"

        RESET_VECTOR
        .text
        .code16
start:
        REAL_MODE_SETUP
        PRINT16 "Hello from bhyve-ts guest\n"
        PRINT16 "This little program ran in real mode from the reset vector. Bye!\n"
        DONE16

        GUEST_LIBRARY
