# labench — one Makefile. `make` builds ./labench (with the CUDA backend when nvcc is found),
# `make test` runs the CPU tests, `make check-asan` the same under ASan + UBSan,
# `make gpu-bundle` the self-contained folder for a GPU machine, `make gpu-check` the GPU
# verification from it (gpu-bundle/run.sh; needs a GPU), `make fuzz` the libFuzzer harnesses of
# tests/fuzz/.
#
# Source conventions: every .c under bench/*/ strategies/ model/ kernels/ profile/ common/ is part of
# the library, except bench/cli/main.c (the entry point) and two suffixes that follow the CUDA switch:
#   *_cuda.c   compiled only when nvcc is found (may include CUDA headers);
#   *_nocuda.c compiled only when it is not (stubs that say why).
#   *_mpi.c    compiled only when MPI is found (may include mpi.h);
#   *_nompi.c  compiled only when it is not (stubs that say how to get it).
# kernels/cuda/*.cu are compiled by nvcc for sm_80 and sm_90.

CC       ?= gcc
BUILD    ?= build
OPT      ?= -O2
# OpenBLAS: its OpenMP build when installed (Debian: libopenblas-openmp-dev, from scripts/setup.sh),
# so that BLAS runs on OpenMP's threads, one pool for everything (kernels/cpu/openblas.h);
# otherwise whatever -lopenblas is. OPENBLAS_OMP= (empty) forces the latter.
OPENBLAS_OMP ?= $(firstword $(wildcard /usr/lib/*/openblas-openmp/libopenblas.so))
ifneq ($(OPENBLAS_OMP),)
MULTIARCH   := $(notdir $(patsubst %/openblas-openmp/libopenblas.so,%,$(OPENBLAS_OMP)))
BLAS_CFLAGS := -I/usr/include/$(MULTIARCH)/openblas-openmp
BLAS_LIBS   := -L$(dir $(OPENBLAS_OMP)) -Wl,-rpath,$(dir $(OPENBLAS_OMP)) -lopenblas
else
BLAS_LIBS   := -lopenblas
endif

CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Wshadow -Wno-unused-parameter -fopenmp \
            -D_GNU_SOURCE -I. $(BLAS_CFLAGS) $(SAN)
LDLIBS   += -ljansson -lz $(BLAS_LIBS) -lm -fopenmp $(SAN)

CUDA_HOME ?= /usr/local/cuda
NVCC     ?= $(shell if [ -x "$(CUDA_HOME)/bin/nvcc" ]; then echo "$(CUDA_HOME)/bin/nvcc"; else command -v nvcc 2>/dev/null; fi)
# NOCUDA=1 forces the CPU-only build (used by check-asan).
ifeq ($(NOCUDA),1)
NVCC :=
endif

LIB_C    := $(filter-out bench/cli/main.c, $(wildcard bench/*/*.c strategies/*.c model/*.c kernels/*.c kernels/cpu/*.c profile/*.c common/*.c))
ifneq ($(NVCC),)
LIB_C    := $(filter-out %_nocuda.c, $(LIB_C))
LIB_CU   := $(wildcard kernels/cuda/*.cu)
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVFLAGS  += -std=c++17 -O3 -g -lineinfo $(CUDA_ARCH) -I. -Xcompiler -Wall,-Wextra,-Wno-unused-parameter \
            --expt-relaxed-constexpr $(NVFATBIN)
# CUPTI's headers may sit in extras/CUPTI; libcupti itself is loaded with dlopen at run time
# (profile/cupti_cuda.c), so it is not linked. The CUDA runtime is linked statically where the
# toolkit ships libcudart_static.a.
CFLAGS   += -DLABENCH_CUDA=1 -I$(CUDA_HOME)/include $(if $(wildcard $(CUDA_HOME)/extras/CUPTI/include),-I$(CUDA_HOME)/extras/CUPTI/include) \
            -DLABENCH_CUDA_HOME='"$(CUDA_HOME)"'
CUDART   ?= $(if $(wildcard $(CUDA_HOME)/lib64/libcudart_static.a),-lcudart_static -lrt -lpthread,-lcudart)
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas $(CUDART) -lstdc++ -ldl
else
LIB_C    := $(filter-out %_cuda.c, $(LIB_C))
LIB_CU   :=
endif

# MPI for real data parallelism (--dp real, bench/comm/world_mpi.c): found like nvcc, through Open MPI's
# pkg-config file or its compiler wrapper (mpicc --showme). NOMPI=1 builds without it; that
# labench runs everything but --dp real, which then says how to get it. NCCL is never linked:
# bench/comm/nccl_cuda.c loads libnccl.so.2 at run time, and uses nccl.h for its types when found.
ifeq ($(NOMPI),1)
MPI_LIBS :=
else
MPI_LIBS := $(shell pkg-config --libs ompi 2>/dev/null || mpicc --showme:link 2>/dev/null)
MPI_CFLAGS := $(shell pkg-config --cflags ompi 2>/dev/null || mpicc --showme:compile 2>/dev/null)
endif
ifneq ($(strip $(MPI_LIBS)),)
LIB_C    := $(filter-out %_nompi.c, $(LIB_C))
CFLAGS   += -DLABENCH_MPI=1 $(MPI_CFLAGS)
LDLIBS   += $(MPI_LIBS)
else
LIB_C    := $(filter-out %_mpi.c, $(LIB_C))
endif
ifneq ($(NVCC),)
ifneq ($(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h),)
CFLAGS   += -DLABENCH_HAVE_NCCL_H=1
endif
endif
# cuDNN's fused attention (kernels/cuda/attention_cudnn.cu): built with cudnn-frontend's headers
# (scripts/setup.sh unpacks them into build-deps/) and cudnn.h; libcudnn itself is loaded at run
# time, never linked. Without either, or with NOCUDNN=1, the file compiles to a stub that says so.
CUDNN_FE_INC ?= $(firstword $(wildcard build-deps/cudnn-frontend-*/include))
CUDNN_H      := $(firstword $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h))
ifeq ($(NOCUDNN),1)
CUDNN_FE_INC :=
endif
ifneq ($(and $(NVCC),$(CUDNN_FE_INC),$(CUDNN_H)),)
$(BUILD)/kernels/cuda/attention_cudnn.cu.o: NVFLAGS += -DLABENCH_CUDNN_FE=1 -isystem $(CUDNN_FE_INC) -isystem $(dir $(CUDNN_H))
endif

LIB_OBJ  := $(LIB_C:%.c=$(BUILD)/%.o) $(LIB_CU:%.cu=$(BUILD)/%.cu.o)
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
GPU_TESTS := $(patsubst tests/gpu/%.c,$(BUILD)/tests/gpu/%,$(wildcard tests/gpu/test_*.c))

.PHONY: all test check-asan gpu-check gpu-tests clean plan bench-plan bench bench-peer nightly report
all: labench
ifeq ($(NVCC),)
	@echo "note: nvcc not found (CUDA_HOME=$(CUDA_HOME)): built the CPU-only labench"
endif
ifeq ($(strip $(MPI_LIBS)),)
	@echo "note: MPI not found$(if $(filter 1,$(NOMPI)), (NOMPI=1)): built without --dp real (scripts/setup.sh installs Open MPI)"
endif

labench: $(BUILD)/labench
	@ln -sf $(BUILD)/labench labench

$(BUILD)/labench: $(BUILD)/bench/cli/main.o $(BUILD)/liblabench.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/liblabench.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c $(wildcard */*.h) $(wildcard bench/*/*.h) $(wildcard kernels/*/*.h)
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
test: $(TESTS) $(if $(NVCC),$(GPU_TESTS)) labench gpu-bundle
	@LABENCH=$(abspath $(BUILD)/labench) LABENCH_BUNDLE=$(abspath $(BUNDLE)) sh tests/run_tests.sh $(TESTS) $(if $(NVCC),$(GPU_TESTS))

# The same tests, CPU-only, under AddressSanitizer + UndefinedBehaviorSanitizer.
check-asan:
	$(MAKE) BUILD=build-asan NOCUDA=1 OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" $(patsubst $(BUILD)/%,build-asan/%,$(TESTS)) build-asan/labench
	@ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 LABENCH=$(abspath build-asan/labench) \
	  sh tests/run_tests.sh $(patsubst $(BUILD)/%,build-asan/%,$(TESTS))

# The GPU tests build by the rule above too (tests/gpu/X.c -> $(BUILD)/tests/gpu/X).
gpu-tests: $(GPU_TESTS) $(BUILD)/tests/gpu/bench_attention labench

# ---- GPU bundle (issue 12): build here, run on a GPU machine ---------------------------------
# `make gpu-bundle` builds labench, the GPU tests and the CPU-reference tests that gpu-check runs
# in $(BUNDLE_BUILD) (for any x86-64-v3 CPU, without MPI: NOMPI=1), then tests/gpu/bundle.sh
# copies them, stripped, into $(BUNDLE)/ with RUNPATH $ORIGIN/lib and lib/ holding every shared
# library they need beyond glibc, libstdc++/libgcc_s and CUDA's own, with run.sh, measure.sh,
# peer_torch.py and the data. `make test` builds it and tests/test_gpu_bundle.c checks it.
# `make gpu-check` runs the check from the bundle (on a GPU machine: copy the folder, run run.sh).
BUNDLE          ?= gpu-bundle
BUNDLE_BUILD    ?= build-bundle$(if $(NVCC),,-nocuda)
# (-Wno-psabi: the CPU ops' 64-byte vectors are split in two below AVX-512, and GCC notes that
# returning one then has another ABI; they are static functions of one file, no ABI is crossed)
BUNDLE_CPU_ARCH ?= -march=x86-64-v3
# device code compressed in the binaries (fatbinary's long-standing -compress-all: 5.0 MB ->
# 0.9 MB for attention.cu); the driver decompresses it when the module loads
BUNDLE_NVFATBIN := -Xfatbin=-compress-all
BUNDLE_ELFS     := $(BUNDLE_BUILD)/labench $(patsubst $(BUILD)/%,$(BUNDLE_BUILD)/%,$(GPU_TESTS)) \
                   $(BUNDLE_BUILD)/tests/test_cpu_ops $(BUNDLE_BUILD)/tests/test_model \
                   $(BUNDLE_BUILD)/tests/gpu/bench_attention
.PHONY: gpu-bundle
gpu-bundle:
	@$(MAKE) --no-print-directory BUILD=$(BUNDLE_BUILD) NOMPI=1 CPU_ARCH="$(BUNDLE_CPU_ARCH) -Wno-psabi" \
	    NVFATBIN="$(BUNDLE_NVFATBIN)" $(BUNDLE_ELFS)
	@CC="$(CC)" NVCC="$(NVCC)" CPU_ARCH="$(BUNDLE_CPU_ARCH)" CUDNN_FE="$(if $(and $(CUDNN_FE_INC),$(CUDNN_H)),$(CUDNN_FE_INC))" \
	    sh tests/gpu/bundle.sh $(BUNDLE) $(BUNDLE_ELFS)

gpu-check: gpu-bundle
	bash $(BUNDLE)/run.sh
# ---- end of the GPU bundle block --------------------------------------------------------------

# Plan-level comparison of every strategy (no model).
plan: labench
	./labench plan --strategy all --len-dist data/longalign-mix.hist

bench-plan: labench
	./labench bench-plan

# OpenMP threads wait for the next parallel region by spinning. On a machine shared with other
# work a spinning thread holds the core that the thread with work needs, so the timed runs spin
# briefly and then sleep (README, "The CPU backend"), unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is
# set already.
RUN_ENV ?= $(if $(OMP_WAIT_POLICY)$(GOMP_SPINCOUNT),,GOMP_SPINCOUNT=10000)

# The main job: every strategy trained and measured (CPU backend with the tiny model when no GPU
# is usable), LongAlign's setup predicted on 8xA800 by the device model (docs/device-model.md), then
# REPORT.md and its plots regenerated from both.
bench: labench
	$(RUN_ENV) ./labench --strategy all --len-dist data/longalign-mix.hist --out results/latest.json --trace=traces/latest.json
	./labench plan --strategy all --len-dist data/longalign-mix.hist --device a800 --model 7b --comm zero3-offload \
	  --epochs 2 --pack-compute full --out results/predicted-8xa800.json
	./labench report results/latest.json results/predicted-8xa800.json -o REPORT.md

report: labench
	./labench report results/latest.json $(wildcard results/predicted-8xa800.json) -o REPORT.md

# labench's CPU step against PyTorch's, same weights and packed row (needs torch; not in CI).
bench-peer: labench
	$(RUN_ENV) python3 scripts/peer_cpu_step.py

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
	rm -rf build build-asan build-fuzz labench build-bundle build-bundle-nocuda $(BUNDLE)
