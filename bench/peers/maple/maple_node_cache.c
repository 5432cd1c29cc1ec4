/* SPDX-License-Identifier: MIT
 *
 * bench/peers/maple/maple_node_cache.c -- a plain per-thread node cache for
 * the maple tree peer, implementing the kmem_cache calls lib/maple_tree.c
 * makes (tools/include/linux/slab.h) in place of the kernel test harness's
 * slab emulation (tools/testing/shared/linux.c, which allocates, poisons
 * and frees every aligned object under one mutex, with global counters).
 *
 * Each thread keeps up to CACHE_MAX free objects of the one cache it serves
 * on a private stack; a thread whose stack overflows moves half of it to a
 * shared free list, and a thread whose stack is empty takes up to CACHE_MOVE
 * objects from that list before carving new ones out of a 64 KiB chunk of its
 * own (taken from malloc at the cache's alignment: objects packed as a slab
 * packs them). Frees mostly happen on liburcu's call_rcu thread (RCU mode),
 * so the shared list is what carries objects back to the writers. A thread's
 * stack goes to the shared list when it exits. Objects are never returned to
 * malloc: the cache keeps what it grew to for the process's lifetime, as a
 * slab does.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <linux/gfp.h>
#include <linux/slab.h>

#define CACHE_MAX 64
#define CACHE_MOVE 32
#define CHUNK_BYTES (64 * 1024)

/* What linux.c defines besides the cache calls and other shim code uses. */
int nr_allocated;
int preempt_count;
int test_verbose;

struct kmem_cache {
	unsigned int size, align;
	void (*ctor)(void *);
	pthread_mutex_t lock; /* guards shared and chunk_bytes */
	void *shared;	      /* free objects, linked through their first word */
	unsigned long chunk_bytes;
};

struct thread_stack {
	struct kmem_cache *cache; /* the one cache this thread's stack holds */
	unsigned int n;
	void *obj[CACHE_MAX];
	char *carve, *carve_end; /* the rest of this thread's current chunk */
};

static __thread struct thread_stack stack;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void give_back(struct kmem_cache *c, void **obj, unsigned int n)
{
	void *head;
	unsigned int i;

	pthread_mutex_lock(&c->lock);
	head = c->shared;
	for (i = 0; i < n; i++) {
		*(void **)obj[i] = head;
		head = obj[i];
	}
	c->shared = head;
	pthread_mutex_unlock(&c->lock);
}

static void thread_exit(void *unused)
{
	(void)unused;
	if (stack.cache && stack.n)
		give_back(stack.cache, stack.obj, stack.n);
	stack.n = 0;
}

static void make_exit_key(void)
{
	pthread_key_create(&exit_key, thread_exit);
}

static struct thread_stack *my_stack(struct kmem_cache *c)
{
	if (stack.cache != c) {
		if (stack.cache && stack.n)
			give_back(stack.cache, stack.obj, stack.n);
		stack.cache = c;
		stack.n = 0;
		stack.carve = stack.carve_end = NULL;
		pthread_once(&exit_key_once, make_exit_key);
		pthread_setspecific(exit_key, &stack); /* non-NULL: run thread_exit */
	}
	return &stack;
}

struct kmem_cache *kmem_cache_create(const char *name, unsigned int size, unsigned int align,
				     unsigned int flags, void (*ctor)(void *))
{
	struct kmem_cache *c = calloc(1, sizeof(*c));

	(void)name;
	(void)flags;
	if (!c)
		return NULL;
	c->size = size;
	c->align = align;
	c->ctor = ctor;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void *fresh(struct kmem_cache *c, struct thread_stack *s)
{
	const unsigned int align = c->align ? c->align : sizeof(void *);
	const unsigned int step = (c->size + align - 1) / align * align;
	void *chunk;

	if (s->carve_end - s->carve < (long)step) {
		if (posix_memalign(&chunk, align < 4096 ? 4096 : align, CHUNK_BYTES))
			return NULL;
		s->carve = chunk;
		s->carve_end = s->carve + CHUNK_BYTES;
		pthread_mutex_lock(&c->lock);
		c->chunk_bytes += CHUNK_BYTES;
		pthread_mutex_unlock(&c->lock);
	}
	s->carve += step;
	return s->carve - step;
}

static void *take(struct kmem_cache *c, int gfp)
{
	struct thread_stack *s = my_stack(c);
	void *p;

	if (s->n == 0) {
		pthread_mutex_lock(&c->lock);
		while (s->n < CACHE_MOVE && c->shared) {
			s->obj[s->n++] = c->shared;
			c->shared = *(void **)c->shared;
		}
		pthread_mutex_unlock(&c->lock);
	}
	p = s->n ? s->obj[--s->n] : fresh(c, s);
	if (!p)
		return NULL;
	if (c->ctor)
		c->ctor(p);
	else if (gfp & __GFP_ZERO)
		memset(p, 0, c->size);
	return p;
}

void *kmem_cache_alloc_lru(struct kmem_cache *c, struct list_lru *lru, int gfp)
{
	(void)lru;
	return take(c, gfp);
}

void kmem_cache_free(struct kmem_cache *c, void *p)
{
	struct thread_stack *s = my_stack(c);

	if (s->n == CACHE_MAX) {
		give_back(c, s->obj + CACHE_MAX - CACHE_MOVE, CACHE_MOVE);
		s->n -= CACHE_MOVE;
	}
	s->obj[s->n++] = p;
}

void kmem_cache_free_bulk(struct kmem_cache *c, size_t size, void **list)
{
	size_t i;

	for (i = 0; i < size; i++)
		kmem_cache_free(c, list[i]);
}

int kmem_cache_alloc_bulk(struct kmem_cache *c, gfp_t gfp, size_t size, void **list)
{
	size_t i;

	for (i = 0; i < size; i++) {
		list[i] = take(c, gfp);
		if (!list[i]) {
			kmem_cache_free_bulk(c, i, list);
			return 0;
		}
	}
	return (int)size;
}

void kmem_cache_shrink(struct kmem_cache *c)
{
	(void)c;
}

/* What the cache took from malloc, free objects included. */
unsigned long kmem_cache_get_alloc(struct kmem_cache *c)
{
	unsigned long b;

	pthread_mutex_lock(&c->lock);
	b = c->chunk_bytes;
	pthread_mutex_unlock(&c->lock);
	return b;
}

/* Budget and callbacks of the test harness's emulation: nothing to do here,
 * in-lock allocations always succeed. */
void kmem_cache_set_non_kernel(struct kmem_cache *c, unsigned int val)
{
	(void)c;
	(void)val;
}
