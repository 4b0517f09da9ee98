# acn.h
#   make test       the whole test suite (tests/run.sh)
#   make examples   every single-file example, into build/
#   make refs       regenerate the committed PyTorch reference files (ops and small models)
#   make bench-cpu  acn.h against PyTorch and OpenBLAS on this CPU (a few minutes; needs torch)
#   make clean
CC ?= cc
PYTHON ?= /usr/bin/python3
EXFLAGS := -std=c99 -O2 -Wall -Wextra -Werror -pedantic
EXAMPLES := $(patsubst examples/%.c,build/%,$(wildcard examples/*.c))

.PHONY: test examples refs bench-cpu clean

test:
	CC=$(CC) PYTHON=$(PYTHON) tests/run.sh

examples: $(EXAMPLES)

build/%: examples/%.c acn.h
	@mkdir -p build
	$(CC) $(EXFLAGS) $< -o $@ -lm

refs:
	$(PYTHON) tests/ref/make_refs.py tests/ref
	$(PYTHON) tests/reference/models.py tests/reference small

bench-cpu:
	CC=$(CC) PYTHON=$(PYTHON) tests/bench/bench_cpu.sh

clean:
	rm -rf build
