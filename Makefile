# acn.h
#   make demo       plain, residual and ACN networks side by side on the built-in digits (demo-out/)
#   make test       the whole test suite (tests/run.sh)
#   make examples   every single-file example, into build/
#   make mpi        train_mixer, train_vit and train_bert built with mpicc -DACN_MPI, into build/mpi/,
#                   for data-parallel training under mpirun (docs/distributed.md)
#   make web        the teaching page (examples/web): acn.h in WebAssembly, into build/web/
#   make serve-web  serves build/web on http://127.0.0.1:8000/ for a local browser
#   make cuda       the GPU unit: acn_cuda.cu with nvcc (sm_90 and PTX), tests/test_cuda.c against
#                   it, and train_mixer, train_vit and train_bert with --device cuda, into build/cuda/
#                   (docs/cuda.md; needs the CUDA toolkit)
#   make refs       regenerate the committed PyTorch reference files (ops, AutoAugment, small models)
#   make bench-cpu  acn.h against PyTorch and OpenBLAS on this CPU (a few minutes; needs torch)
#   make bench-cuda acn.h on one NVIDIA GPU against PyTorch eager and at its best (torch.compile,
#                   CUDA graphs, fused AdamW): the paper's Mixer at batch 64 and 256, the ViT (needs a GPU)
#   make bench-mpi  the paper's Mixer step on 1 and 2 ranks, the all-reduce's share, a ping-pong,
#                   and a model of 8 and 64 ranks (docs/distributed.md; needs Open MPI)
#   make fuzz       libFuzzer (clang, ASan + UBSan) on every file reader, one target after another for
#                   FUZZ_SECONDS each (default 60): safetensors, the checkpoint pair, CIFAR, IDX, CSV, TSV
#                   (tests/fuzz/fuzz_*.c). Seeds: tests/fuzz/corpus/<target>/ (and, for safetensors, the
#                   committed reference files); what it finds goes to
#                   build/fuzz/corpus-<target>/, crashes to build/fuzz/crash-<target>-*; make test replays
#                   the committed corpora and tests/fuzz/crashes/ without libFuzzer (tests/fuzz/replay.c)
#   make results-l150   the low-data protocol L150 of docs/results.md: four Mixers (ACN and residual,
#                   seeds 0 and 1) on 1,000 CIFAR-10 images for 150 epochs, then the paper recipe's
#                   pair, two processes at a time, one thread each (about 2 h on 2 cores); into
#                   runs/l150/; an interrupted run continues where it stopped (--resume)
#   make results-noise  the L150 models under Gaussian and salt-and-pepper noise (--eval-only)
#   make results-vit-noise  ACN and residual ViTs on CIFAR-10 (about 1.5 h), then the same noise
#   make results-bert  AC-BERT on SST-2: the configurations of docs/results.md, ACN and residual
#   make results-classes  the ACN and residual Mixers of L150 on classes 0-1 and 0-4 of CIFAR-10
#                   (seeds 0 and 1; about 40 min), into runs/classes/
#   make clean
CC ?= cc
PYTHON ?= /usr/bin/python3
EXFLAGS := -std=c99 -O2 -Wall -Wextra -Werror -pedantic
EXAMPLES := $(patsubst examples/%.c,build/%,$(wildcard examples/*.c))

.PHONY: demo test examples mpi cuda web serve-web refs bench-cpu bench-cuda bench-mpi fuzz clean results-l150 results-noise results-classes classes-seed results-bert results-vit-noise
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := safetensors checkpoint cifar idx csv tsv

demo: build/demo
	build/demo --out demo-out

test:
	CC=$(CC) PYTHON=$(PYTHON) tests/run.sh

examples: $(EXAMPLES)

build/demo: examples/digits.h examples/svg.h
build/gradient_paths: examples/digits.h examples/svg.h
build/train_mixer build/train_vit: examples/train.h examples/train_images.h
build/train_bert: examples/train.h
build/compress: examples/svg.h examples/train.h examples/train_images.h
build/continual: examples/train.h
build/%: examples/%.c acn.h
	@mkdir -p build
	$(CC) $(EXFLAGS) $< -o $@ -lm

# the teaching page: acn.h compiled to WebAssembly (wasm32-wasi) beside its page, into build/web/
# (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)
WASM_CC ?= clang
web: build/web/acn_web.wasm build/web/index.html build/web/app.js
build/web/acn_web.wasm: examples/web/acn_web.c acn.h examples/digits.h
	@mkdir -p build/web
	$(WASM_CC) --target=wasm32-wasi -std=c99 -pedantic -Wall -Wextra -Werror -O2 -mexec-model=reactor $< -o $@
build/web/index.html build/web/app.js: build/web/%: examples/web/%
	@mkdir -p build/web
	cp $< $@
serve-web: web
	@echo "serving build/web: open http://127.0.0.1:8000/ in a browser (Ctrl-C stops)"
	cd build/web && $(PYTHON) -m http.server 8000 --bind 127.0.0.1

# the training programs for many processes: mpirun -np N build/mpi/train_mixer ... (docs/distributed.md)
MPICC ?= mpicc
mpi: build/mpi/train_mixer build/mpi/train_vit build/mpi/train_bert
build/mpi/train_mixer build/mpi/train_vit: examples/train.h examples/train_images.h examples/svg.h
build/mpi/train_bert: examples/train.h
build/mpi/%: examples/%.c acn.h
	@mkdir -p build/mpi
	$(MPICC) $(EXFLAGS) -DACN_MPI $< -o $@ -lm

# the GPU unit (docs/cuda.md): nvcc from the CUDA toolkit (not a Debian package)
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(CUDA_HOME)/bin/nvcc
NVFLAGS := -O3 -gencode arch=compute_90,code=[sm_90,compute_90] -Werror all-warnings \
           -Xcompiler -Wall,-Wextra,-Werror -Xptxas -warn-spills,-warn-lmem-usage
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas
cuda: build/cuda/test_cuda build/cuda/test_cuda_cxx build/cuda/train_mixer build/cuda/train_vit build/cuda/train_bert
build/cuda/train_mixer build/cuda/train_vit: examples/train.h examples/train_images.h examples/svg.h
build/cuda/train_bert: examples/train.h
build/cuda/train_%: examples/train_%.c acn.h build/cuda/acn_cuda.o
	$(CC) $(EXFLAGS) -DACN_CUDA $< build/cuda/acn_cuda.o -o $@ $(CUDA_LIBS) -lstdc++ -lm
build/cuda/acn_cuda.o: acn_cuda.cu acn.h
	@mkdir -p build/cuda
	$(NVCC) $(NVFLAGS) -c $< -o $@
build/cuda/test_cuda: tests/test_cuda.c tests/test.h acn.h build/cuda/acn_cuda.o
	$(CC) $(EXFLAGS) -DACN_CUDA $< build/cuda/acn_cuda.o -o $@ $(CUDA_LIBS) -lstdc++ -lm
build/cuda/test_cuda_cxx: tests/test_cuda.c tests/test.h acn.h build/cuda/acn_cuda.o
	$(CXX) -O2 -Wall -Wextra -Werror -x c++ -DACN_CUDA $< -x none build/cuda/acn_cuda.o -o $@ $(CUDA_LIBS) -lm

refs:
	$(PYTHON) tests/ref/make_refs.py tests/ref
	$(PYTHON) tests/ref/make_aa_refs.py tests/ref
	$(PYTHON) tests/reference/models.py tests/reference small

bench-cpu:
	CC=$(CC) PYTHON=$(PYTHON) tests/bench/bench_cpu.sh

bench-cuda:
	tests/bench/bench_cuda.sh

bench-mpi:
	PYTHON=$(PYTHON) tests/bench/bench_mpi.sh

fuzz:
	@mkdir -p build/fuzz/corpus-safetensors
	cp tests/ref/*.safetensors tests/reference/*.safetensors build/fuzz/corpus-safetensors/
	set -e; for t in $(FUZZ_TARGETS); do \
	    clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	        tests/fuzz/fuzz_$$t.c -o build/fuzz/fuzz_$$t -lm; \
	    mkdir -p build/fuzz/corpus-$$t; \
	    case $$t in safetensors) len=65536 ;; cifar) len=12500 ;; *) len=8192 ;; esac; \
	    build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$len -artifact_prefix=build/fuzz/crash-$$t- \
	        build/fuzz/corpus-$$t tests/fuzz/corpus/$$t; \
	done

clean:
	rm -rf build

# ---- the experiments of docs/results.md -----------------------------------------------------
L150 := --low-data 100 --batch 64 --drop-last --lr 1e-3 --wd 0.01 --clip 1 --warmup 10 --min-lr 0 \
        --epochs 150 --eval-every 15 --threads 1
# run_pair DIR PREFIX SUFFIX SEED FLAGS: ACN and residual Mixers side by side, one thread each, into
# DIR/PREFIX{acn,residual}SUFFIX_sSEED; each resumes its checkpoint if there is one
define run_pair
	@mkdir -p $(1)
	for w in acn residual; do n=$(2)$${w}$(3)_s$(4); p=$(1)/$$n; r=; [ -f $$p.safetensors ] && r="--resume $$p"; \
	    build/train_mixer $(L150) $(5) --wiring $$w --seed $(4) --save $$p --log $$p.csv \
	        --plots $(1)/plots_$$n $$r >> $$p.out 2>&1 & done; wait
endef
results-l150: build/train_mixer
	$(call run_pair,runs/l150,,,0,--recipe simple)
	$(call run_pair,runs/l150,,,1,--recipe simple)
	$(call run_pair,runs/l150,paper_,,0,--recipe paper)
results-classes: build/train_mixer
	for s in 0 1; do $(MAKE) --no-print-directory classes-seed SEED=$$s; done
CLASSES2 := --recipe simple --classes 0,1
CLASSES5 := --recipe simple --classes 0,1,2,3,4
classes-seed:
	$(call run_pair,runs/classes,,_c2,$(SEED),$(CLASSES2))
	$(call run_pair,runs/classes,,_c5,$(SEED),$(CLASSES5))
# AC-BERT on SST-2 (data/sst2: train.tsv, dev.tsv): the configurations of docs/results.md, ACN and residual
# side by side, one thread each, into runs/bert/
BERT_A := --depth 8 --width 64 --heads 4 --mlp 256 --mlm-epochs 3 --cls-epochs 3
BERT_B := --depth 12 --width 64 --heads 4 --mlp 256 --mlm-epochs 3 --cls-epochs 3
BERT_C := --depth 12 --width 64 --heads 4 --mlp 256 --mlm-epochs 6 --cls-epochs 3
BERT_D := --depth 12 --width 64 --heads 4 --mlp 256 --mlm-epochs 6 --mlm-warmup 1 --cls-epochs 3
define bert_pair
	@mkdir -p runs/bert
	for w in acn residual; do p=runs/bert/$(1)_$${w}; r=; [ -f $$p.safetensors ] && r="--resume $$p"; \
	    build/train_bert $(BERT_$(1)) --threads 1 --seed 0 --wiring $$w --save $$p --log $$p.csv $$r >> $$p.out 2>&1 & \
	done; wait
endef
results-bert: build/train_bert
	$(call bert_pair,A)
	$(call bert_pair,B)
	$(call bert_pair,C)
	$(call bert_pair,D)
# the ViT pair of the noise experiment: ACN and residual on CIFAR-10, 16 epochs (about 1.5 h for the
# pair), then each under Gaussian and salt-and-pepper noise (--eval-only), into runs/vit/
VIT_NOISE := --epochs 16 --eval-every 4 --warmup 1 --recipe simple --threads 1 --seed 0 --save-every 200
results-vit-noise: build/train_vit
	@mkdir -p runs/vit
	for w in acn residual; do p=runs/vit/$${w}_s0; r=; [ -f $$p.safetensors ] && r="--resume $$p"; \
	    build/train_vit $(VIT_NOISE) --wiring $$w --save $$p --log $$p.csv --plots runs/vit/plots_$${w}_s0 $$r \
	        >> $$p.out 2>&1 & done; wait
	for w in acn residual; do p=runs/vit/$${w}_s0; \
	    for n in 0 0.1 0.2 0.3 0.4 0.5; do build/train_vit --eval-only --threads 1 --weights $$p.safetensors \
	        --eval-noise $$n --log runs/vit/noise_$${w}_s0.csv; done; \
	    for n in 0.02 0.05 0.1; do build/train_vit --eval-only --threads 1 --weights $$p.safetensors --eval-sp $$n \
	        --log runs/vit/noise_$${w}_s0.csv; done; done
results-noise: build/train_mixer
	for s in 0 1; do for w in acn residual; do p=runs/l150/$${w}_s$$s; \
	    for n in 0 0.1 0.2 0.3 0.4 0.5; do build/train_mixer --eval-only --weights $$p.safetensors --eval-noise $$n \
	        --log runs/l150/noise_$${w}_s$$s.csv; done; \
	    for n in 0.02 0.05 0.1; do build/train_mixer --eval-only --weights $$p.safetensors --eval-sp $$n \
	        --log runs/l150/noise_$${w}_s$$s.csv; done; done; done
