# labench — one Makefile. `make` builds ./labench (with the CUDA backend when nvcc is found),
# `make test` runs the CPU tests, `make check-asan` the same under ASan + UBSan,
# `make gpu-check` the GPU verification (tests/gpu/run.sh; needs a GPU), `make fuzz` the
# libFuzzer harnesses of tests/fuzz/.
#
# Source conventions: every .c under bench/ strategies/ model/ kernels/ profile/ is part of the
# library, except bench/main.c (the CLI) and two suffixes that follow the CUDA switch:
#   *_cuda.c   compiled only when nvcc is found (may include CUDA headers);
#   *_nocuda.c compiled only when it is not (stubs that say why).
# kernels/cuda/*.cu are compiled by nvcc for sm_80 and sm_90.

CC       ?= gcc
BUILD    ?= build
OPT      ?= -O2
CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Wshadow -Wno-unused-parameter -fopenmp \
            -D_GNU_SOURCE -I. $(SAN)
LDLIBS   += -ljansson -lopenblas -lm -fopenmp $(SAN)

CUDA_HOME ?= /usr/local/cuda
NVCC     ?= $(shell if [ -x "$(CUDA_HOME)/bin/nvcc" ]; then echo "$(CUDA_HOME)/bin/nvcc"; else command -v nvcc 2>/dev/null; fi)
# NOCUDA=1 forces the CPU-only build (used by check-asan).
ifeq ($(NOCUDA),1)
NVCC :=
endif

LIB_C    := $(filter-out bench/main.c, $(wildcard bench/*.c strategies/*.c model/*.c kernels/*.c kernels/cpu/*.c profile/*.c))
ifneq ($(NVCC),)
LIB_C    := $(filter-out %_nocuda.c, $(LIB_C))
LIB_CU   := $(wildcard kernels/cuda/*.cu)
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVFLAGS  += -std=c++17 -O3 -g -lineinfo $(CUDA_ARCH) -I. -Xcompiler -Wall,-Wextra,-Wno-unused-parameter \
            --expt-relaxed-constexpr
CFLAGS   += -DLABENCH_CUDA=1 -I$(CUDA_HOME)/include
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcupti -lcudart -lstdc++ -ldl
else
LIB_C    := $(filter-out %_cuda.c, $(LIB_C))
LIB_CU   :=
endif

LIB_OBJ  := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CU:%.cu=$(BUILD)/%.cu.o)
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
GPU_TESTS := $(patsubst tests/gpu/%.c,$(BUILD)/tests/gpu/%,$(wildcard tests/gpu/test_*.c))

.PHONY: all test check-asan gpu-check gpu-tests clean plan bench-plan bench nightly report
all: labench
ifeq ($(NVCC),)
	@echo "note: nvcc not found (CUDA_HOME=$(CUDA_HOME)): built the CPU-only labench"
endif

labench: $(BUILD)/labench
	@ln -sf $(BUILD)/labench labench

$(BUILD)/labench: $(BUILD)/bench/main.o $(BUILD)/liblabench.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/liblabench.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c $(wildcard */*.h) $(wildcard kernels/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The CPU reference ops are the CPU backend's hot loops: vectorize them for the building machine
# (labench is built where it runs; CPU_ARCH= gives a portable build).
CPU_ARCH ?= -march=native
$(BUILD)/kernels/cpu/%.o: kernels/cpu/%.c $(wildcard kernels/*.h) $(wildcard kernels/cpu/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O3 $(CPU_ARCH) -c -o $@ $<

$(BUILD)/%.cu.o: %.cu $(wildcard kernels/*.h) $(wildcard kernels/cuda/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/liblabench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblabench.a -lcmocka $(LDLIBS)

# `make test`: every CPU test binary, then the GPU tests when CUDA was built (they skip, saying
# why, where no GPU is usable), then one closing line "N passed, N failed, N skipped".
test: $(TESTS) $(if $(NVCC),$(GPU_TESTS)) labench
	@LABENCH=$(abspath $(BUILD)/labench) sh tests/run_tests.sh $(TESTS) $(if $(NVCC),$(GPU_TESTS))

# The same tests, CPU-only, under AddressSanitizer + UndefinedBehaviorSanitizer.
check-asan:
	$(MAKE) BUILD=build-asan NOCUDA=1 OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" $(patsubst $(BUILD)/%,build-asan/%,$(TESTS)) build-asan/labench
	@ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 LABENCH=$(abspath build-asan/labench) \
	  sh tests/run_tests.sh $(patsubst $(BUILD)/%,build-asan/%,$(TESTS))

gpu-tests: $(GPU_TESTS) labench

$(BUILD)/tests/gpu/%: tests/gpu/%.c tests/test_util.h $(BUILD)/liblabench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblabench.a -lcmocka $(LDLIBS)

gpu-check:
	bash tests/gpu/run.sh

# Plan-level comparison of every strategy (no model).
plan: labench
	./labench plan --strategy all --len-dist data/longalign-mix.hist

bench-plan: labench
	./labench bench-plan

# The main job: every strategy trained and measured (CPU backend with the tiny model when no GPU
# is usable), then REPORT.md and its plots regenerated from the results.
bench: labench
	./labench --strategy all --len-dist data/longalign-mix.hist --out results/latest.json --trace=traces/latest.json
	./labench report results/latest.json -o REPORT.md

report: labench
	./labench report results/latest.json -o REPORT.md

nightly: labench
	bash scripts/nightly.sh

# ---- fuzzing (tests/fuzz/README.md) ---------------------------------------------------------
# `make fuzz` builds one libFuzzer harness per input parser with clang-14
# (-fsanitize=fuzzer,address,undefined) over a CPU-only library built with the same sanitizers
# and coverage, then runs each for FUZZ_SECONDS (default 60) from its committed seed corpus. A
# crash, leak, timeout or broken contract fails it; the findings go to build-fuzz/artifacts/.
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_TARGETS:%=build-fuzz/fuzz/fuzz_%)

.PHONY: fuzz fuzz-build
fuzz-build:
	$(MAKE) BUILD=build-fuzz NOCUDA=1 CC=$(FUZZ_CC) OPT=-O1 \
	  SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" build-fuzz/liblabench.a
	$(MAKE) $(FUZZ_BINS)

build-fuzz/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h build-fuzz/liblabench.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -O1 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -I. -fopenmp $(FUZZ_SAN) \
	  -fsanitize=fuzzer -o $@ $< build-fuzz/liblabench.a -ljansson -lopenblas -lm

fuzz: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
# ---- end of fuzzing --------------------------------------------------------------------------

clean:
	rm -rf build build-asan build-fuzz labench
