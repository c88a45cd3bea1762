// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * Sealbox kernel meter: one uprobe on `sealbox_meter_entry(u64 key)` in the
 * runtime's own binary. Every hit adds 1 to meter_counts[key].
 *
 * Maps (pinned by name under the loader's pin directory, default
 * /sys/fs/bpf/sealbox/, so counts survive the runtime):
 *   meter_counts  HASH  u64 meter key -> u64 calls
 *   meter_stats   ARRAY u32 index     -> u64 (STAT_* below)
 *   meter_layout  ARRAY u32 index     -> u64: [0] layout marker, [1] epoch
 *                 (random, set when the maps are created); written and
 *                 checked by the loader only, never touched here
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
#define STAT_DROPPED 0  /* hits that could not be counted (new key, map full) */
#define STAT_SELFTEST 1 /* hits with SELFTEST_KEY: the loader's attach check */
#define STAT_SLOTS 8    /* room for future counters without a layout change */

/* Reserved key the loader calls once after attaching to prove the probe fires. */
#define SELFTEST_KEY 0xffffffffffffffffULL

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* the loader overrides this (MeterOptions) */
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meter_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} meter_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
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
int BPF_KPROBE(meter_hit, __u64 key)
{
	__u64 one = 1, *v;

	if (key == SELFTEST_KEY) {
		stat_add(STAT_SELFTEST);
		return 0;
	}

	/* Hot path: the key was registered by the loader (or counted before). */
	v = bpf_map_lookup_elem(&meter_counts, &key);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return 0;
	}

	/* First hit of an unregistered key: insert 1, unless another CPU won. */
	if (bpf_map_update_elem(&meter_counts, &key, &one, BPF_NOEXIST) == 0)
		return 0;
	v = bpf_map_lookup_elem(&meter_counts, &key);
	if (v) {
		/* lost the insert race: the other CPU's 1 is in, add ours */
		__sync_fetch_and_add(v, 1);
		return 0;
	}

	/* Map full (or the kernel refused the insert): never lose it silently. */
	stat_add(STAT_DROPPED);
	return 0;
}
