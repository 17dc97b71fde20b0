/*
 * sgemm: times OpenBLAS cblas_sgemm at one shape and prints one JSON line in
 * the format of `shlpt-vk bench --json`, so that the matmul benchmark can be
 * stated as a fraction of it. Not part of the normal build or tests; build it
 * with `make bench-matmul` (needs Debian's libopenblas-dev) or by hand:
 *
 *   gcc -O2 -o sgemm tools/sgemm-openblas/sgemm.c -lopenblas
 *   ./sgemm 1024x1024x1024 [runs] [nn|nt|tn|tt]
 *
 * The shape is MxNxK (C is MxN, the inner dimension K), the same order as the
 * matmul benchmark. C = A*B with row-major A (MxK) and B (KxN); with "nt" B is
 * stored NxK and used transposed, as in X*W^T. One untimed warm-up call, then
 * `runs` timed calls (default 20); median_us is the median wall time of one
 * call. OpenBLAS uses its default thread count (all cores, or
 * OPENBLAS_NUM_THREADS).
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static float *filled(size_t n, unsigned s) {
	float *v = malloc(n * sizeof *v);
	if (!v) {
		fprintf(stderr, "sgemm: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 17;
		s ^= s << 5;
		v[i] = ((float)(s % 2001) - 1000) / 4000;
	}
	return v;
}

int main(int argc, char **argv) {
	int m, n, k, runs = 20;
	const char *trans = "nn";
	if (argc < 2 || sscanf(argv[1], "%dx%dx%d", &m, &n, &k) != 3 || m <= 0 || n <= 0 || k <= 0) {
		fprintf(stderr, "usage: sgemm MxNxK [runs] [nn|nt|tn|tt]\n");
		return 2;
	}
	if (argc > 2 && (runs = atoi(argv[2])) < 1) {
		fprintf(stderr, "sgemm: runs must be positive\n");
		return 2;
	}
	if (argc > 3) {
		trans = argv[3];
		if (strlen(trans) != 2 || strspn(trans, "nt") != 2) {
			fprintf(stderr, "sgemm: transposition must be nn, nt, tn or tt\n");
			return 2;
		}
	}
	int ta = trans[0] == 't', tb = trans[1] == 't';
	float *a = filled((size_t)m * k, 2463534242u);
	float *b = filled((size_t)k * n, 2463534243u);
	float *c = filled((size_t)m * n, 2463534244u);
	double *t = malloc(runs * sizeof *t);
	for (int i = -1; i < runs; i++) {
		double start = now_us();
		cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
		            m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
		if (i >= 0)
			t[i] = now_us() - start;
	}
	qsort(t, runs, sizeof *t, cmp);
	double med = runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2;
	printf("{\"op\":\"openblas_sgemm\",\"shape\":\"%dx%dx%d\",\"trans\":\"%s\",\"runs\":%d,\"median_us\":%.1f,\"gflops\":%.2f,\"timer\":\"wall\"}\n",
	       m, n, k, trans, runs, med, 2.0 * m * n * k / (med * 1e3));
	free(a);
	free(b);
	free(c);
	free(t);
	return 0;
}
