# shlpt-vk build targets. `go build` needs no shader compiler: the SPIR-V in
# shaders/*.spv is committed and embedded. `make spirv` regenerates it.

GLSLC       ?= glslc
# Vulkan 1.1 SPIR-V (subgroup operations); -O for size/speed. No debug info so
# that the output depends only on the source and the compiler version.
GLSLC_FLAGS := --target-env=vulkan1.1 --target-spv=spv1.3 -O -Werror -Ishaders

SHADERS := $(wildcard shaders/*.comp)
# Variants of one source compiled with an extra define: NAME_w16.spv is
# NAME.comp with -DW16 (a 16-bit weight operand: float16 or bfloat16).
W16_VARIANTS := shaders/matmul_texel_w16.spv shaders/matmul_tiled_w16.spv shaders/embedding_w16.spv
SPIRV   := $(SHADERS:.comp=.spv) $(W16_VARIANTS)
GLSL_INCLUDES := $(wildcard shaders/*.glsl)

.PHONY: all setup build spirv test test-short check fmt vet bench clean-spirv

all: build

# Installs the system packages (Vulkan loader, lavapipe, validation layer,
# glslc, gcc, make) and Go 1.23+ where missing; as root or through sudo.
# On a machine without make: sh tools/setup.sh.
setup:
	sh tools/setup.sh

build:
	go build -o bin/shlpt-vk ./tools/shlpt-vk

spirv: FORCE
	@$(MAKE) -B --no-print-directory $(SPIRV)

FORCE:

shaders/%.spv: shaders/%.comp $(GLSL_INCLUDES)
	$(GLSLC) $(GLSLC_FLAGS) -o $@ $<

shaders/%_w16.spv: shaders/%.comp $(GLSL_INCLUDES)
	$(GLSLC) $(GLSLC_FLAGS) -DW16 -o $@ $<

clean-spirv:
	rm -f shaders/*.spv

# The test command of README.md. LP_NUM_THREADS=0 makes lavapipe run shaders on
# the calling thread: per-dispatch overhead drops from ~29 µs to ~0.5 µs, which
# is what unit tests with tiny shapes need.
test:
	LP_NUM_THREADS=0 go test -race -timeout 45m ./...

test-short:
	LP_NUM_THREADS=0 go test -short ./...

fmt:
	gofmt -l -w .

vet:
	go vet ./...

# Static checks that CI runs besides the tests.
check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	go vet ./...

# Matmul throughput as a fraction of OpenBLAS cblas_sgemm on the same cores:
# for each shape, BENCH_MATMUL_REPEAT pairs of runs back to back (OpenBLAS,
# then shlpt-vk on the default device), each pair printing its ratio, then
# the median ratio per shape. Needs gcc and libopenblas-dev (not needed by
# the build or the tests). lavapipe runs with its default thread count
# (LP_NUM_THREADS is unset for the benchmark). See docs/performance.md.
BENCH_MATMUL_SHAPES ?= 1024x1024x1024 2048x2048x2048
BENCH_MATMUL_REPEAT ?= 3

.PHONY: bench-matmul
bench-matmul: build
	gcc -O2 -Wall -o bin/sgemm-openblas tools/sgemm-openblas/sgemm.c -lopenblas
	@for s in $(BENCH_MATMUL_SHAPES); do \
	  for i in $$(seq $(BENCH_MATMUL_REPEAT)); do \
	    o=$$(env -u LP_NUM_THREADS ./bin/sgemm-openblas $$s) || exit 1; \
	    v=$$(env -u LP_NUM_THREADS ./bin/shlpt-vk bench --op matmul --shape $$s --json) || exit 1; \
	    echo "$$o"; echo "$$v"; \
	    og=$$(echo "$$o" | sed -n 's/.*"gflops":\([0-9.e+-]*\).*/\1/p'); \
	    vg=$$(echo "$$v" | sed -n 's/.*"gflops":\([0-9.e+-]*\).*/\1/p'); \
	    awk -v s=$$s -v o=$$og -v v=$$vg 'BEGIN { printf "ratio %s %.1f%% (shlpt-vk %.1f GFLOP/s, OpenBLAS %.1f GFLOP/s)\n", s, 100*v/o, v, o }'; \
	  done; \
	done | tee bin/bench-matmul.log
	@awk '/^ratio/ { r[$$2] = r[$$2] " " $$3 } END { for (s in r) { n = split(r[s], a, " "); for (i = 1; i <= n; i++) a[i] += 0; \
	  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; \
	  printf "median ratio %s: %.1f%% of OpenBLAS over %d back-to-back pairs\n", s, a[int((n + 1) / 2)], n } }' bin/bench-matmul.log | sort
