// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Sealbox kernel meter: one uprobe on `sealbox_meter_entry(u64 slot)` in the
 * runtime's own binary. Every hit adds 1 to this CPU's meter_counts[slot].
 *
 * Maps (pinned by name under the loader's pin directory, default
 * /sys/fs/bpf/sealbox/, so counts survive the runtime):
 *   meter_counts  PERCPU_ARRAY u32 slot -> u64 calls on each CPU (a reader
 *                 sums the CPUs)
 *   meter_slots   HASH  u64 meter key -> u32 slot: which counter a key owns;
 *                 written by the loader only (under its pin directory lock),
 *                 never touched here
 *   meter_stats   ARRAY u32 index     -> u64 (STAT_* below)
 *   meter_layout  ARRAY u32 index     -> u64: [0] layout marker, [1] epoch
 *                 (random, set when the maps are created), [2] the next free
 *                 slot; written and checked by the loader only, never touched here
 *
 * Why slots in a per-CPU array (layout v2) rather than hashed keys in a hash
 * map (v1): the hit is an array index (no hash, no bucket walk) and the add
 * lands in this CPU's own cache line, so two CPUs counting the same product
 * never contend for one. The add stays atomic: a uprobe program runs with
 * migration disabled but may be preempted, and another task on this CPU could
 * then hit the same slot; an uncontended locked add on a CPU-local line is cheap.
 *
 * The layout of these maps is checked by the loader (crate sealbox-ebpf,
 * src/layout.rs) before a pinned map is reused: change a map here and bump
 * LAYOUT_VERSION there.
 *
 * No vmlinux.h: a uprobe only reads the user registers, whose layout is the
 * uapi struct pt_regs from <linux/ptrace.h> (no CO-RE needed).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Declared GPL-compatible for the kernel; the source is dual-licensed. */
char LICENSE[] SEC("license") = "GPL";

/* meter_stats indices */
#define STAT_DROPPED 0  /* hits that could not be counted (a slot out of range) */
#define STAT_SELFTEST 1 /* hits with SELFTEST_KEY: the loader's attach check */
#define STAT_SLOTS 8    /* room for future counters without a layout change */

/* Reserved argument the loader calls once after attaching to prove the probe fires. */
#define SELFTEST_SLOT 0xffffffffffffffffULL

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096); /* the loader overrides this (MeterOptions) */
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meter_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* the loader overrides this: the same as meter_counts */
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meter_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meter_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meter_layout SEC(".maps");

static __always_inline void stat_add(__u32 idx)
{
	__u64 *p = bpf_map_lookup_elem(&meter_stats, &idx);

	if (p)
		__sync_fetch_and_add(p, 1);
}

SEC("uprobe")
int BPF_KPROBE(meter_hit, __u64 slot)
{
	__u32 idx = (__u32)slot;
	__u64 *v;

	if (slot == SELFTEST_SLOT) {
		stat_add(STAT_SELFTEST);
		return 0;
	}
	/* A slot the loader handed out is always in range; anything else is counted as dropped. */
	v = slot <= 0xffffffffULL ? bpf_map_lookup_elem(&meter_counts, &idx) : 0;
	if (v) {
		__sync_fetch_and_add(v, 1);
		return 0;
	}
	stat_add(STAT_DROPPED);
	return 0;
}
