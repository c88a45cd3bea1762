// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Sealbox TLS handshake meter: cgroup programs attached to a target cgroup v2
 * directory (and so to every cgroup below it).
 *
 *   tls_egress    cgroup_skb/egress   recognises the first record of a TLS
 *                                     handshake in outgoing TCP payload:
 *                                     ClientHello (client side) or ServerHello
 *                                     (server side), per tls_config
 *   tls_ingress   cgroup_skb/ingress  recognises incoming ClientHellos (the
 *                                     alternative server-side hook)
 *   tls_connect4  cgroup/connect4     the kernel-side quota: takes one from the
 *   tls_connect6  cgroup/connect6     allowance per TCP connect to a metered
 *                                     port, refuses (EPERM) when it is empty
 *
 * The skb programs always return 1 (pass): the meter never drops a packet.
 * Each connection is counted once (a mark in socket local storage), since a
 * retransmitted segment, or a second ClientHello after a HelloRetryRequest,
 * repeats the record.
 *
 * Maps pinned by name under the loader's pin directory (so counts outlive the
 * loader; the loader checks their layout, src/tls/layout.rs, before reuse:
 * change one here and bump TLS_LAYOUT_VERSION there):
 *   tls_totals  HASH     u64 tenant cgroup id -> u64 handshakes counted (the
 *                        total of record; an event's seq is this value right
 *                        after its atomic increment)
 *   tls_stats   ARRAY    u32 STAT_* -> u64
 *   tls_quota   ARRAY    u32 QUOTA_* -> u64: [0] granted (cumulative, written
 *                        by user space only), [1] admitted (connects let
 *                        through, incremented here only)
 *   tls_layout  ARRAY    [0] layout marker, [1] epoch (loader only)
 *   tls_events  RINGBUF  struct tls_event per counted handshake
 *   tls_conns   SK_STORAGE u32 per socket: 1 once the connection was counted
 *   tls_config  ARRAY    u32 CFG_* -> u64 (written by the loader at every
 *                        attach, and by set_enforcement)
 *   tls_ports   HASH     u16 port (host order) -> u8 1: the metered ports
 *                        (written by the loader at every attach)
 * The loader also pins the programs' cgroup links in the same directory
 * (tls_egress_link, ...), so the programs stay attached, and keep reading
 * tls_config and tls_ports, while no loader runs (src/tls/links.rs).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define SOCK_STREAM_TYPE 1

/* tls_stats indices */
#define STAT_DROPPED 0   /* counted handshakes whose event did not fit the ring buffer */
#define STAT_REFUSED 1   /* connects refused (enforcement on, allowance empty) */
#define STAT_OVER 2      /* connects let through past the allowance (enforcement off) */
#define STAT_UNCOUNTED 3 /* handshakes seen but not counted: tenant map full */
#define STAT_NODEDUP 4   /* handshakes counted without a per-socket mark (no storage) */
#define STAT_CONTENDED 5 /* connects refused because the allowance CAS kept losing */
#define STAT_SLOTS 8

/* tls_quota indices */
#define QUOTA_GRANTED 0
#define QUOTA_ADMITTED 1

/* tls_config indices */
#define CFG_ENFORCE 0      /* 1: refuse connects past the allowance */
#define CFG_ALL_PORTS 1    /* 1: every port is metered (tls_ports ignored) */
#define CFG_EGRESS_TYPE 2  /* handshake type tls_egress counts: 1, 2, or 0 = none */
#define CFG_INGRESS_TYPE 3 /* handshake type tls_ingress counts: 1 or 0 = none */
#define CFG_TENANT_LEVEL 4 /* 0: the socket's own cgroup; n > 0: its ancestor at level n - 1 */
#define CFG_SLOTS 8

#define SIDE_CLIENT 0
#define SIDE_SERVER 1

/* One counted handshake. 72 bytes, little-endian (x86_64), no holes. */
struct tls_event {
	__u64 seq;        /* tenant's tls_totals value after this handshake's increment */
	__u64 cgroup_id;  /* tenant */
	__u64 ts_ns;      /* CLOCK_BOOTTIME */
	__u64 cookie;     /* socket cookie */
	__u8 side;        /* SIDE_* */
	__u8 family;      /* 4 or 6 */
	__u8 hs_type;     /* 1 ClientHello, 2 ServerHello */
	__u8 ingress;     /* 1: seen on ingress */
	__u16 local_port; /* host order */
	__u16 remote_port;
	__u8 local_addr[16];  /* IPv4: first 4 bytes */
	__u8 remote_addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* the loader overrides this */
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tls_totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tls_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tls_quota SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tls_layout SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* the loader overrides this */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tls_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tls_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CFG_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tls_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tls_ports SEC(".maps");

static __always_inline void stat_add(__u32 idx)
{
	__u64 *p = bpf_map_lookup_elem(&tls_stats, &idx);

	if (p)
		__sync_fetch_and_add(p, 1);
}

static __always_inline __u64 cfg(__u32 idx)
{
	__u64 *p = bpf_map_lookup_elem(&tls_config, &idx);

	return p ? *p : 0;
}

static __always_inline int port_metered(__u16 port)
{
	if (cfg(CFG_ALL_PORTS))
		return 1;
	return bpf_map_lookup_elem(&tls_ports, &port) != 0;
}

/* Adds one to the tenant's total; returns the new total (the event's seq), 0 if uncounted. */
static __always_inline __u64 count(__u64 tenant)
{
	__u64 one = 1, *v;

	v = bpf_map_lookup_elem(&tls_totals, &tenant);
	if (v)
		return __sync_fetch_and_add(v, 1) + 1;
	if (bpf_map_update_elem(&tls_totals, &tenant, &one, BPF_NOEXIST) == 0)
		return 1;
	v = bpf_map_lookup_elem(&tls_totals, &tenant);
	if (v)
		return __sync_fetch_and_add(v, 1) + 1; /* lost the insert race */
	stat_add(STAT_UNCOUNTED);
	return 0;
}

/* TLS record header plus the start of the handshake message:
 * [0] type 0x16, [1..2] version 0x03 0x0?, [3..4] record length,
 * [5] handshake type, [6..8] handshake length, [9..10] legacy_version 0x03 0x0?. */
#define PEEK 11

static __always_inline int is_hello(const __u8 *r, __u8 want)
{
	__u16 len = ((__u16)r[3] << 8) | r[4];

	return r[0] == 0x16 && r[1] == 0x03 && r[2] <= 0x04 && r[5] == want && r[9] == 0x03 &&
	       len >= 4 + 2 + 32 && len <= 16384 + 2048;
}

static __always_inline void seen(struct __sk_buff *skb, int ingress)
{
	__u8 want = cfg(ingress ? CFG_INGRESS_TYPE : CFG_EGRESS_TYPE);
	__u8 saddr[16] = {}, daddr[16] = {};
	__u8 family, rec[PEEK];
	struct tcphdr tcp;
	__u32 off;

	if (!want)
		return;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return;
		if (ip.protocol != IPPROTO_TCP || (ip.frag_off & bpf_htons(0x3fff)))
			return;
		off = ip.ihl * 4;
		__builtin_memcpy(saddr, &ip.saddr, 4);
		__builtin_memcpy(daddr, &ip.daddr, 4);
		family = 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return;
		/* extension headers are not walked: TCP must follow directly */
		if (ip6.nexthdr != IPPROTO_TCP)
			return;
		off = sizeof(ip6);
		__builtin_memcpy(saddr, &ip6.saddr, 16);
		__builtin_memcpy(daddr, &ip6.daddr, 16);
		family = 6;
	} else {
		return;
	}
	if (bpf_skb_load_bytes(skb, off, &tcp, sizeof(tcp)))
		return;
	off += tcp.doff * 4;
	if (bpf_skb_load_bytes(skb, off, rec, PEEK))
		return; /* no payload, or too short to be a hello */
	if (!is_hello(rec, want))
		return;

	__u16 sport = bpf_ntohs(tcp.source), dport = bpf_ntohs(tcp.dest);
	__u16 lport = ingress ? dport : sport, rport = ingress ? sport : dport;
	__u8 side = (!ingress && want == 1) ? SIDE_CLIENT : SIDE_SERVER;

	/* the metered port: the server's, i.e. remote for a client, local for a server */
	if (!port_metered(side == SIDE_CLIENT ? rport : lport))
		return;

	struct bpf_sock *sk = skb->sk;
	__u32 *mark = 0;

	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (sk)
		mark = bpf_sk_storage_get(&tls_conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (mark) {
		if (__sync_val_compare_and_swap(mark, 0, 1) != 0)
			return; /* this connection was counted already */
	} else {
		stat_add(STAT_NODEDUP);
	}

	__u32 level = cfg(CFG_TENANT_LEVEL);
	__u64 tenant = level ? bpf_skb_ancestor_cgroup_id(skb, level - 1) : bpf_skb_cgroup_id(skb);
	__u64 seq = count(tenant);

	if (!seq)
		return;

	struct tls_event *e = bpf_ringbuf_reserve(&tls_events, sizeof(*e), 0);

	if (!e) {
		stat_add(STAT_DROPPED);
		return;
	}
	e->seq = seq;
	e->cgroup_id = tenant;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->cookie = bpf_get_socket_cookie(skb);
	e->side = side;
	e->family = family;
	e->hs_type = want;
	e->ingress = ingress;
	e->local_port = lport;
	e->remote_port = rport;
	if (ingress) {
		__builtin_memcpy(e->local_addr, daddr, 16);
		__builtin_memcpy(e->remote_addr, saddr, 16);
	} else {
		__builtin_memcpy(e->local_addr, saddr, 16);
		__builtin_memcpy(e->remote_addr, daddr, 16);
	}
	bpf_ringbuf_submit(e, 0);
}

SEC("cgroup_skb/egress")
int tls_egress(struct __sk_buff *skb)
{
	seen(skb, 0);
	return 1;
}

SEC("cgroup_skb/ingress")
int tls_ingress(struct __sk_buff *skb)
{
	seen(skb, 1);
	return 1;
}

/* Takes one from the allowance for a TCP connect to a metered port.
 * Returns 1 to let the connect go on, 0 to refuse it (connect() fails with EPERM). */
static __always_inline int admit(struct bpf_sock_addr *ctx)
{
	__u32 gk = QUOTA_GRANTED, ak = QUOTA_ADMITTED;
	__u64 *granted, *admitted;
	int i;

	if (ctx->type != SOCK_STREAM_TYPE)
		return 1;
	if (!port_metered(bpf_ntohs((__u16)ctx->user_port)))
		return 1;
	granted = bpf_map_lookup_elem(&tls_quota, &gk);
	admitted = bpf_map_lookup_elem(&tls_quota, &ak);
	if (!granted || !admitted)
		return 1;
	for (i = 0; i < 64; i++) {
		__u64 a = *(volatile __u64 *)admitted;
		__u64 g = *(volatile __u64 *)granted;

		if (a >= g) {
			if (cfg(CFG_ENFORCE)) {
				stat_add(STAT_REFUSED);
				return 0;
			}
			stat_add(STAT_OVER);
			__sync_fetch_and_add(admitted, 1);
			return 1;
		}
		if (__sync_val_compare_and_swap(admitted, a, a + 1) == a)
			return 1;
	}
	/* 64 lost races in a row: refuse rather than let one through unaccounted */
	stat_add(STAT_CONTENDED);
	return cfg(CFG_ENFORCE) ? 0 : 1;
}

SEC("cgroup/connect4")
int tls_connect4(struct bpf_sock_addr *ctx)
{
	return admit(ctx);
}

SEC("cgroup/connect6")
int tls_connect6(struct bpf_sock_addr *ctx)
{
	return admit(ctx);
}
