/*
 * vnet: drives virtio-net through the legacy interface, polling, in flat
 * 32-bit protected mode. The guest is 10.0.2.15; the host side of the tap
 * (a network namespace the test makes) is 10.0.2.1.
 *
 *   virtio-net io IIII features FFFFFFFF
 *   MAC xx:xx:xx:xx:xx:xx
 *   LINK SS
 *   ARP reply from xx:xx:xx:xx:xx:xx tries N      (ARP requests until the host answers)
 *   UDP sent                                      (10.0.2.15:5555 -> 10.0.2.1:5555)
 *   UDP from host: TEXT | UDP no reply
 * With -DHOSTILE (no MRG_RXBUF: 10-byte headers): the first three receive
 * buffers are bad (in the ROM, outside memory, device-readable), then
 *   Hn status SS used LLLLLLLL                    (bad transmit chains H1-H8)
 *   ARP reply ...                                 (the device still works)
 *   H9 status SS                                  (avail index runs ahead: NEEDS_RESET)
 *   ARP reply ...                                 (after a reset)
 * Always, at the end:
 *   TX frames N                                   (valid frames sent)
 *   RX bad N other N
 *   DONE
 */
#include "common.h"
#include "vnet.h"

#define DEV_NET         0x1000
#define F_MAC           (1 << 5)
#define F_MRG_RXBUF     (1 << 15)
#define F_STATUS        (1 << 16)
#ifdef HOSTILE
#define WANT            (F_MAC | F_STATUS)
#define RX_FIRST        3
#else
#define WANT            (F_MAC | F_STATUS | F_MRG_RXBUF)
#define RX_FIRST        0
#endif

#define RXQ_MEM         0x10000
#define TXQ_MEM         0x18000         /* after a 1024-entry receive queue */
#define RXBUF           0x20000         /* NRX buffers of 2 KiB: buffer i belongs to descriptor i */
#define RXBUF_SIZE      2048
#define NRX             16
#define TXBUF           0x30000
#define INDIR           0x38000
#define ARP_WAIT_MS     200
#define MAX_TRIES       100

#define V_MAC           (SCRATCH + 0x60)
#define V_HMAC          (SCRATCH + 0x68)
#define V_HDR           (SCRATCH + 0x70)
#define V_TRIES         (SCRATCH + 0x74)
#define V_SENT          (SCRATCH + 0x78)
#define V_GOT           (SCRATCH + 0x7C)  /* what rx_poll saw: 1 an ARP reply, 2 our UDP */
#define V_BADRX         (SCRATCH + 0x80)
#define V_OTHER         (SCRATCH + 0x84)

#define BE16(x)         ((((x) & 0xff) << 8) | (((x) >> 8) & 0xff))
#define GUEST_IP        0x0F02000A      /* 10.0.2.15, as a little-endian dword */
#define HOST_IP         0x0102000A      /* 10.0.2.1 */
#define UDP_PORT_BE     BE16(5555)
#define ETH_ARP_BE      BE16(0x0806)
#define ETH_IP_BE       BE16(0x0800)
#define PAYLOAD_LEN     29
#define ARP_LEN         60              /* padded to the Ethernet minimum */

        .pushsection .rodata.vnet, "a"
bcast:  .byte 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
payload: .ascii "hello from the bhyve-ts guest"
payload_end:
        .popsection
        .if payload_end - payload - PAYLOAD_LEN
        .error "PAYLOAD_LEN is wrong"
        .endif

        RESET_VECTOR
        .text
        .code16
start:
        ENTER_PM32 main
        call setup_idt32
        call hpet_init
        movl $0, V_SENT
        movl $0, V_BADRX
        movl $0, V_OTHER
        call net_init
        PRINT32 "virtio-net io "
        HEX32 V_IOBASE, 4
        PRINT32 " features "
        HEX32 V_FEATURES, 8
        PRINT32 "\n"
        xor %ecx, %ecx
1:      call vio_cfg8
        mov %al, V_MAC(%ecx)
        inc %ecx
        cmp $6, %ecx
        jb 1b
        PRINT32 "MAC "
        mov $V_MAC, %esi
        call print_mac
        PRINT32 "\nLINK "
        mov $6, %ecx
        call vio_cfg8
        HEX32 %eax, 2
        PRINT32 "\n"
#ifdef HOSTILE
        call post_bad_rx
#endif
        call rx_post
        call arp_resolve
        jc finish
#ifndef HOSTILE
        call send_udp
        PRINT32 "UDP sent\n"
        mov $5000, %eax
        call deadline_ms
1:      call rx_poll
        jc 2f
        cmpl $2, V_GOT
        je finish
        jmp 1b
2:      call expired
        jnc 1b
        PRINT32 "UDP no reply\n"
#else
        call hostile
#endif
finish:
        PRINT32 "TX frames "
        DEC32 V_SENT
        PRINT32 "\nRX bad "
        DEC32 V_BADRX
        PRINT32 " other "
        DEC32 V_OTHER
        PRINT32 "\n"
        DONE32

/* Open the device, queues 0 (receive) and 1 (transmit), DRIVER_OK. */
net_init:
        movl $WANT, V_FEATURES
        mov $PCI_ID(DEV_NET), %eax
        call vio_open
        jnc 1f
        PRINT32 "no virtio-net\n"
        DONE32
1:      movl $10, V_HDR
        testl $F_MRG_RXBUF, V_FEATURES
        jz 2f
        movl $12, V_HDR
2:      xor %eax, %eax
        mov $RXQ_MEM, %edi
        call vio_queue
        mov $1, %eax
        mov $TXQ_MEM, %edi
        call vio_queue
        mov $ST_DRIVER_OK, %al
        call vio_status_or
        ret

/* Ask who has 10.0.2.1 until a reply comes (CF set when none after MAX_TRIES). */
arp_resolve:
        movl $0, V_TRIES
1:      incl V_TRIES
        call build_arp
        call tx_send
        mov $ARP_WAIT_MS, %eax
        call deadline_ms
2:      call rx_poll
        jc 3f
        cmpl $1, V_GOT
        je 4f
        jmp 2b
3:      call expired
        jnc 2b
        cmpl $MAX_TRIES, V_TRIES
        jb 1b
        PRINT32 "ARP no reply\n"
        stc
        ret
4:      PRINT32 "ARP reply from "
        mov $V_HMAC, %esi
        call print_mac
        PRINT32 " tries "
        DEC32 V_TRIES
        PRINT32 "\n"
        clc
        ret

#include "vnet-proto.inc"

#ifdef HOSTILE
#include "vnet-hostile.inc"
#endif

/* Exceptions are reported by IDT_SUPPORT; no interrupt is ever enabled. */
irq_handler:
        PRINT32 "unexpected interrupt\n"
        DONE32

        VIRTIO_ROUTINES
        HPET_ROUTINES
        IDT_SUPPORT
        GUEST_LIBRARY
