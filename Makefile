# acn.h
#   make demo       plain, residual and ACN networks side by side on the built-in digits (demo-out/)
#   make test       the whole test suite (tests/run.sh)
#   make examples   every single-file example, into build/
#   make refs       regenerate the committed PyTorch reference files (ops, AutoAugment, small models)
#   make bench-cpu  acn.h against PyTorch and OpenBLAS on this CPU (a few minutes; needs torch)
#   make fuzz       libFuzzer on the safetensors reader (FUZZ_SECONDS, default 60; needs clang)
#   make clean
CC ?= cc
PYTHON ?= /usr/bin/python3
EXFLAGS := -std=c99 -O2 -Wall -Wextra -Werror -pedantic
EXAMPLES := $(patsubst examples/%.c,build/%,$(wildcard examples/*.c))

.PHONY: demo test examples refs bench-cpu fuzz clean
FUZZ_SECONDS ?= 60

demo: build/demo
	build/demo --out demo-out

test:
	CC=$(CC) PYTHON=$(PYTHON) tests/run.sh

examples: $(EXAMPLES)

build/demo: examples/digits.h examples/svg.h
build/train_mixer build/train_vit: examples/train.h examples/train_images.h
build/train_bert: examples/train.h
build/%: examples/%.c acn.h
	@mkdir -p build
	$(CC) $(EXFLAGS) $< -o $@ -lm

refs:
	$(PYTHON) tests/ref/make_refs.py tests/ref
	$(PYTHON) tests/ref/make_aa_refs.py tests/ref
	$(PYTHON) tests/reference/models.py tests/reference small

bench-cpu:
	CC=$(CC) PYTHON=$(PYTHON) tests/bench/bench_cpu.sh

fuzz:
	@mkdir -p build/fuzz-corpus
	clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_safetensors.c -o build/fuzz_safetensors -lm
	cp tests/ref/*.safetensors tests/reference/*.safetensors build/fuzz-corpus/
	build/fuzz_safetensors -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build/fuzz-corpus

clean:
	rm -rf build
