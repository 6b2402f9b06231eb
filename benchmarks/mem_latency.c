/* Load-to-load latency of this machine's caches and memory: a pointer chase over one random
   cycle through a buffer of each size (one 64-byte line per step), best of 5 passes.

       gcc -O2 -o /tmp/mem_latency benchmarks/mem_latency.c && /tmp/mem_latency [huge]

   "huge" asks for transparent huge pages (madvise), to separate TLB misses from cache misses.
   Used to read the lookup benchmark: a table whose working set leaves a level pays that
   level's latency per dependent access. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void) {  /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char** argv) {
    static const size_t kib[] = {16, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536};
    int huge = argc > 1;
    for (size_t s = 0; s < sizeof kib / sizeof kib[0]; s++) {
        size_t bytes = kib[s] << 10, n = bytes / 64, steps = 4000000, i;
        char* buf;
        size_t* order = malloc(n * sizeof(size_t));
        void* p;
        double best = 1e9;
        if (order == NULL || posix_memalign((void**)&buf, 2 << 20, bytes) != 0)
            return 1;
        if (huge)
            madvise(buf, bytes, MADV_HUGEPAGE);
        for (i = 0; i < n; i++)
            order[i] = i;
        for (i = n - 1; i > 0; i--) {
            size_t j = next() % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (i = 0; i < n; i++)
            *(void**)(buf + order[i] * 64) = buf + order[(i + 1) % n] * 64;
        p = buf + order[0] * 64;
        for (i = 0; i < n; i++)  /* one pass to warm */
            p = *(void**)p;
        for (int r = 0; r < 5; r++) {
            double t0 = now(), t;
            for (i = 0; i < steps; i++)
                p = *(void**)p;
            t = (now() - t0) / steps * 1e9;
            if (t < best)
                best = t;
        }
        printf("%8zu KiB  %6.1f ns%s\n", kib[s], best, p == NULL ? "!" : "");
        free(order);
        free(buf);
    }
    return 0;
}
