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

/* Post receive buffers RX_FIRST..NRX-1 (2 KiB each, device-writable). */
rx_post:
        pushal
        mov $QS(0), %ebx
        mov $RX_FIRST, %ecx
1:      mov %ecx, %esi
        shl $11, %esi
        add $RXBUF, %esi
        mov $RXBUF_SIZE, %edx
        mov $DESC_F_WRITE, %eax
        call q_desc
        call q_add
        inc %ecx
        cmp $NRX, %ecx
        jb 1b
        xor %eax, %eax
        call vio_notify
        popal
        ret

/* Take one received frame, if any (CF set when none): classify it, give the buffer back. */
rx_poll:
        pushal
        movl $0, V_GOT
        mov $QS(0), %ebx
        call q_used
        jc 9f
        cmp V_HDR, %edx
        jae 1f
        incl V_BADRX                    /* a bad buffer handed back empty: not reposted */
        jmp 8f
1:      push %ecx
        mov %ecx, %esi
        shl $11, %esi
        add $RXBUF, %esi
        add V_HDR, %esi
        movzwl 12(%esi), %eax
        cmp $ETH_ARP_BE, %eax
        jne 2f
        call rx_arp
        jmp 7f
2:      cmp $ETH_IP_BE, %eax
        jne 3f
        call rx_udp
        jmp 7f
3:      incl V_OTHER
7:      pop %ecx
        call q_add
        xor %eax, %eax
        call vio_notify
8:      clc
9:      popal
        ret

/* %esi = frame: an ARP reply from 10.0.2.1? Keep its sender MAC. */
rx_arp:
        cmpw $BE16(2), 20(%esi)
        jne 1f
        cmpl $HOST_IP, 28(%esi)
        jne 1f
        push %esi
        push %edi
        push %ecx
        add $22, %esi
        mov $V_HMAC, %edi
        mov $6, %ecx
        rep movsb
        pop %ecx
        pop %edi
        pop %esi
        movl $1, V_GOT
        ret
1:      incl V_OTHER
        ret

/* %esi = frame: UDP from 10.0.2.1 to port 5555? Print its payload. */
rx_udp:
        cmpb $0x45, 14(%esi)
        jne 1f
        cmpb $17, 23(%esi)
        jne 1f
        cmpl $HOST_IP, 26(%esi)
        jne 1f
        cmpw $UDP_PORT_BE, 36(%esi)
        jne 1f
        movzwl 38(%esi), %ecx
        xchg %cl, %ch
        sub $8, %ecx
        jbe 1f
        cmp $200, %ecx
        jbe 2f
        mov $200, %ecx
2:      PRINT32 "UDP from host: "
        add $42, %esi
3:      movb (%esi), %al
        cmp $0x20, %al
        jb 4f
        call putc32
4:      inc %esi
        dec %ecx
        jnz 3b
        PRINT32 "\n"
        movl $2, V_GOT
        ret
1:      incl V_OTHER
        ret

/* Zero the transmit buffer; %edi = where the Ethernet header goes (after the virtio-net header). */
tx_clear:
        push %eax
        push %ecx
        mov $TXBUF, %edi
        mov $64, %ecx
        xor %eax, %eax
        rep stosl
        mov $TXBUF, %edi
        add V_HDR, %edi
        pop %ecx
        pop %eax
        ret

/* Ethernet header at %edi: destination (%esi), our MAC, type %ax (big-endian); %edi moves past it. */
put_eth:
        push %ecx
        push %esi
        mov $6, %ecx
        rep movsb
        mov $V_MAC, %esi
        mov $6, %ecx
        rep movsb
        mov %ax, (%edi)
        add $2, %edi
        pop %esi
        pop %ecx
        ret

/* A broadcast ARP request "who has 10.0.2.1, tell 10.0.2.15" in TXBUF; %edx = its length with the header. */
build_arp:
        push %eax
        push %ecx
        push %esi
        push %edi
        call tx_clear
        mov $bcast, %esi
        mov $ETH_ARP_BE, %ax
        call put_eth
        movl $0x00080100, (%edi)        /* htype 1, ptype 0x0800 */
        movl $0x01000406, 4(%edi)       /* hlen 6, plen 4, request */
        add $8, %edi
        mov $V_MAC, %esi
        mov $6, %ecx
        rep movsb                       /* sender MAC */
        movl $GUEST_IP, (%edi)
        movl $HOST_IP, 10(%edi)         /* target MAC stays zero */
        mov V_HDR, %edx
        add $ARP_LEN, %edx
        pop %edi
        pop %esi
        pop %ecx
        pop %eax
        ret

/* A UDP datagram to the host's MAC, 10.0.2.15:5555 -> 10.0.2.1:5555, sent. */
send_udp:
        pushal
        call tx_clear
        mov $V_HMAC, %esi
        mov $ETH_IP_BE, %ax
        call put_eth
        mov %edi, %ebx
        movl $((BE16(28 + PAYLOAD_LEN) << 16) | 0x45), (%edi)
        movl $0x00400000, 4(%edi)       /* id 0, don't fragment */
        movl $0x00001140, 8(%edi)       /* TTL 64, UDP, checksum 0 for now */
        movl $GUEST_IP, 12(%edi)
        movl $HOST_IP, 16(%edi)
        movl $((UDP_PORT_BE << 16) | UDP_PORT_BE), 20(%edi)
        movl $BE16(8 + PAYLOAD_LEN), 24(%edi)   /* length; no UDP checksum */
        add $28, %edi
        mov $payload, %esi
        mov $PAYLOAD_LEN, %ecx
        rep movsb
        mov %ebx, %esi
        mov $10, %ecx
        call ip_csum
        mov %ax, 10(%ebx)
        mov V_HDR, %edx
        add $(14 + 28 + PAYLOAD_LEN), %edx
        call tx_send
        popal
        ret

/* Ones' complement checksum of %ecx 16-bit words at %esi -> %ax (store as is). */
ip_csum:
        push %ebx
        push %ecx
        push %esi
        xor %eax, %eax
1:      movzwl (%esi), %ebx
        add %ebx, %eax
        add $2, %esi
        dec %ecx
        jnz 1b
        mov %eax, %ebx
        shr $16, %ebx
        and $0xffff, %eax
        add %ebx, %eax
        mov %eax, %ebx
        shr $16, %ebx
        add %ebx, %eax
        not %eax
        and $0xffff, %eax
        pop %esi
        pop %ecx
        pop %ebx
        ret

/* Send TXBUF (%edx bytes) as descriptor 0 of queue 1 and wait for it (1 s). */
tx_send:
        pushal
        mov $QS(1), %ebx
        xor %ecx, %ecx
        mov $TXBUF, %esi
        xor %eax, %eax
        call q_desc
        call tx_submit0
        cmp $0xffffffff, %edx
        jne 1f
        PRINT32 "TX timeout\n"
1:      incl V_SENT
        popal
        ret

/* Make descriptor 0 (already written) available on queue 1, notify, wait 1 s -> %edx = used length, ~0 on a timeout. */
tx_submit0:
        push %eax
        push %ebx
        push %ecx
        mov $QS(1), %ebx
        xor %ecx, %ecx
        call q_add
        mov $1, %eax
        call vio_notify
        mov $1000, %eax
        call deadline_ms
1:      call q_used
        jnc 2f
        call expired
        jnc 1b
        mov $0xffffffff, %edx
2:      pop %ecx
        pop %ebx
        pop %eax
        ret

/* %esi = 6 bytes: print xx:xx:xx:xx:xx:xx. */
print_mac:
        push %ecx
        push %esi
        mov $6, %ecx
1:      movzbl (%esi), %eax
        HEX32 %eax, 2
        inc %esi
        dec %ecx
        jz 2f
        mov $':', %al
        call putc32
        jmp 1b
2:      pop %esi
        pop %ecx
        ret

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
