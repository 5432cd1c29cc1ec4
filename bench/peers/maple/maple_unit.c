/* SPDX-License-Identifier: MIT
 *
 * bench/peers/maple/maple_unit.c -- the build unit of the maple tree peer.
 *
 * It compiles the kernel's lib/maple_tree.c the way the kernel's own user-
 * space test suite does (tools/testing/shared/maple-shim.c, included
 * unmodified, over the tools/testing/shared and tools/include shims and
 * liburcu), configured as a production x86-64 kernel rather than a debug
 * one:
 *  - CONFIG_64BIT (the 6.12 harness generates it but includes it nowhere,
 *    which would give the 32-bit node layout), set on the command line;
 *  - no CONFIG_DEBUG_MAPLE_TREE: maple-shared.h sets it for the test suite
 *    (global atomic counters on every internal check); this unit stands in
 *    for maple-shared.h (its include guard is defined first) and makes the
 *    same includes and definitions without it;
 *  - the harness's slab emulation lets allocations under the tree's lock
 *    (GFP_NOWAIT) succeed, as a kernel does, instead of failing every one
 *    (its default budget of 0 makes each write unlock, allocate and retry).
 * Then it adds the functions of maple_c.h, under the prefix
 * rcukit_maple_<RCUKIT_MAPLE_VARIANT>_. Being in the same translation unit
 * they may use the tree's static helpers (mas_insert), as the kernel's own
 * mtree_alloc_rrange does.
 */
#ifndef RCUKIT_MAPLE_VARIANT
#error "build with -DRCUKIT_MAPLE_VARIANT=slab or node_cache"
#endif

/* maple-shared.h without CONFIG_DEBUG_MAPLE_TREE */
#define __MAPLE_SHARED_H__
#define CONFIG_MAPLE_SEARCH
#define MAPLE_32BIT (MAPLE_NODE_SLOTS > 31)
#include "shared.h"
#include <stdlib.h>
#include <time.h>
#include "linux/init.h"

#include "maple-shim.c"

#include <limits.h>
#include <pthread.h>

#include "maple_c.h"

#define RCUKIT_CAT2(a, b) a##b
#define RCUKIT_CAT(a, b) RCUKIT_CAT2(a, b)
#define RCUKIT_FN(name) RCUKIT_CAT(RCUKIT_CAT(rcukit_maple_, RCUKIT_MAPLE_VARIANT), _##name)

extern void kmem_cache_set_non_kernel(struct kmem_cache *, unsigned int);
extern unsigned long kmem_cache_get_alloc(struct kmem_cache *);

/* The 64-bit node layout of an x86-64 kernel (the pitfall above). */
_Static_assert(sizeof(struct maple_node) == 256, "maple nodes must be 256 bytes: build with CONFIG_64BIT");

static pthread_once_t rcukit_once = PTHREAD_ONCE_INIT;

static void rcukit_init(void)
{
	maple_tree_init();
	/* In-lock allocations succeed, as in a kernel (see above). */
	kmem_cache_set_non_kernel(maple_node_cache, UINT_MAX);
}

void *RCUKIT_FN(create)(void)
{
	struct maple_tree *mt;

	pthread_once(&rcukit_once, rcukit_init);
	mt = malloc(sizeof(*mt));
	if (mt)
		mt_init_flags(mt, MT_FLAGS_ALLOC_RANGE | MT_FLAGS_USE_RCU);
	return mt;
}

unsigned long RCUKIT_FN(node_bytes)(void)
{
	pthread_once(&rcukit_once, rcukit_init);
	return kmem_cache_get_alloc(maple_node_cache);
}

void RCUKIT_FN(destroy)(void *tree)
{
	mtree_destroy(tree);
	free(tree);
}

static void rcukit_fill(struct rcukit_maple_range *out, const struct ma_state *mas, void *entry)
{
	out->first = mas->index;
	out->last = mas->last;
	out->value = xa_to_value(entry);
}

int RCUKIT_FN(insert)(void *tree, unsigned long first, unsigned long last, unsigned long value)
{
	return mtree_insert_range(tree, first, last, xa_mk_value(value), GFP_KERNEL);
}

int RCUKIT_FN(find)(void *tree, unsigned long lo, unsigned long hi, struct rcukit_maple_range *out)
{
	MA_STATE(mas, tree, lo, lo);
	void *entry;
	int found = 0;

	rcu_read_lock();
	entry = mas_find(&mas, hi);
	if (entry) {
		rcukit_fill(out, &mas, entry);
		found = 1;
	}
	rcu_read_unlock();
	return found;
}

int RCUKIT_FN(erase)(void *tree, unsigned long index, struct rcukit_maple_range *out)
{
	MA_STATE(mas, tree, index, index);
	void *entry;

	mtree_lock((struct maple_tree *)tree);
	/* Walk first: the range erased is the entry's (mas_erase() leaves the
	 * merged empty range in the state), then store NULL over it from where
	 * the walk stopped, as the kernel's own walk-then-store callers do. */
	entry = mas_walk(&mas);
	if (entry) {
		rcukit_fill(out, &mas, entry);
		/* GFP_NOWAIT keeps the lock held (the range cannot change under
		 * us); without memory, mas_erase() sleeps to allocate and walks
		 * again. */
		if (mas_store_gfp(&mas, NULL, GFP_NOWAIT)) {
			mas_set(&mas, out->first);
			mas_erase(&mas);
		}
	}
	mtree_unlock((struct maple_tree *)tree);
	return entry != NULL;
}

unsigned long RCUKIT_FN(walk)(void *tree, unsigned long lo, unsigned long hi, rcukit_maple_visit f, void *ctx)
{
	MA_STATE(mas, tree, lo, lo);
	struct rcukit_maple_range r;
	unsigned long n = 0;
	void *entry;

	rcu_read_lock();
	mas_for_each(&mas, entry, hi) {
		rcukit_fill(&r, &mas, entry);
		++n;
		if (!f(ctx, &r))
			break;
	}
	rcu_read_unlock();
	return n;
}

int RCUKIT_FN(alloc_rev)(void *tree, unsigned long size, unsigned long align, unsigned long min,
			 unsigned long max, unsigned long value, unsigned long *start)
{
	struct maple_tree *mt = tree;
	unsigned long top = max, s;
	int ret;
	MA_STATE(mas, mt, 0, 0);

	if (size == 0 || align == 0 || (align & (align - 1)) || min > max)
		return -EINVAL;
	mtree_lock(mt);
retry:
	for (;;) {
		/* The highest free run of size values in [min, top]: [index, last]. */
		ret = mas_empty_area_rev(&mas, min, top, size);
		if (ret)
			goto unlock;
		s = mas.index & ~(align - 1);
		if (s < min || s > mas.index) {
			ret = -EBUSY;
			goto unlock;
		}
		if (s == mas.index)
			break;
		/* Aligning down left the free run: is [s, index - 1] free too? */
		{
			MA_STATE(below, mt, mas.index - 1, mas.index - 1);

			if (!mas_find_rev(&below, s))
				break;
			/* No: the next candidate lies below the entry found. */
			if (below.index == 0 || below.index - 1 < min + size - 1) {
				ret = -EBUSY;
				goto unlock;
			}
			top = below.index - 1;
		}
		mas_reset(&mas);
	}
	mas_set_range(&mas, s, s + size - 1);
	mas_insert(&mas, xa_mk_value(value));
	/* mas_nomem() may release the lock: the area found may be taken by now. */
	if (mas_nomem(&mas, GFP_KERNEL)) {
		top = max;
		mas_reset(&mas);
		goto retry;
	}
	if (mas_is_err(&mas))
		ret = xa_err(mas.node);
	else
		*start = s;
unlock:
	mtree_unlock(mt);
	mas_destroy(&mas);
	return ret;
}
