/* SPDX-License-Identifier: MIT
 *
 * bench/peers/maple/maple_c.h -- the C interface rcukit's benchmarks use to
 * reach the kernel's maple tree (lib/maple_tree.c of Debian's
 * linux-source-6.12, built by maple_unit.c). Linked only into the binaries
 * of bench/peers/maple/, which are GPL-2.0 for it (README.md there).
 *
 * Two builds of the same tree differ only in where its nodes come from;
 * each exports the same functions with its own prefix and keeps every other
 * symbol local to its object:
 *   rcukit_maple_slab_*        the kernel test harness's slab emulation
 *                              (tools/testing/shared/linux.c as shipped)
 *   rcukit_maple_node_cache_*  a plain per-thread node cache
 *                              (maple_node_cache.c)
 *
 * Trees are created with MT_FLAGS_ALLOC_RANGE (gap tracking) and
 * MT_FLAGS_USE_RCU (lock-free readers, nodes freed through call_rcu of
 * liburcu's memb flavour): every calling thread must be registered with
 * urcu-memb, and rcu_barrier() must run before the process exits. Writers
 * take the tree's own lock. Values are 63-bit integers (stored as XArray
 * value entries). Ranges are inclusive [first, last].
 */
#ifndef RCUKIT_MAPLE_C_H
#define RCUKIT_MAPLE_C_H

#ifdef __cplusplus
extern "C" {
#endif

struct rcukit_maple_range {
	unsigned long first, last; /* inclusive */
	unsigned long value;
};

/* Called for each entry of a walk; returning 0 stops it. */
typedef int (*rcukit_maple_visit)(void *ctx, const struct rcukit_maple_range *r);

#define RCUKIT_MAPLE_DECLARE(v)                                                        \
	/* A new empty tree; NULL without memory. */                                   \
	void *rcukit_maple_##v##_create(void);                                         \
	/* Destroys the tree (nodes go through call_rcu); no concurrent use. */        \
	void rcukit_maple_##v##_destroy(void *tree);                                   \
	/* Stores [first, last] -> value unless it overlaps an entry:                  \
	 * 0, -EEXIST, -ENOMEM or -EINVAL. */                                          \
	int rcukit_maple_##v##_insert(void *tree, unsigned long first, unsigned long last, \
				      unsigned long value);                            \
	/* The first entry overlapping [lo, hi], read under rcu_read_lock():           \
	 * 1 and *out, or 0. */                                                        \
	int rcukit_maple_##v##_find(void *tree, unsigned long lo, unsigned long hi,    \
				    struct rcukit_maple_range *out);                   \
	/* Erases the whole entry holding index: 1 and *out, or 0 if none. */         \
	int rcukit_maple_##v##_erase(void *tree, unsigned long index,                 \
				     struct rcukit_maple_range *out);                  \
	/* Visits the entries overlapping [lo, hi] in order under                      \
	 * rcu_read_lock(); returns how many it visited. */                            \
	unsigned long rcukit_maple_##v##_walk(void *tree, unsigned long lo, unsigned long hi, \
					      rcukit_maple_visit f, void *ctx);         \
	/* Top-down allocation under the tree's lock: the highest free range of       \
	 * size values, starting at a multiple of align (a power of two), inside     \
	 * [min, max], found with mas_empty_area_rev and stored as value.             \
	 * 0 and *start, -EBUSY when nothing fits, -ENOMEM, -EINVAL. */               \
	int rcukit_maple_##v##_alloc_rev(void *tree, unsigned long size, unsigned long align, \
					 unsigned long min, unsigned long max,         \
					 unsigned long value, unsigned long *start);     \
	/* Bytes of node memory this build holds for all its trees: the slab      \
	 * emulation's live objects (256 bytes each, as a kernel slab packs       \
	 * them), or what the node cache took from malloc (cached nodes too). */  \
	unsigned long rcukit_maple_##v##_node_bytes(void);

RCUKIT_MAPLE_DECLARE(slab)
RCUKIT_MAPLE_DECLARE(node_cache)

#ifdef __cplusplus
}
#endif

#endif /* RCUKIT_MAPLE_C_H */
