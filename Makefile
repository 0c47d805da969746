# p2pio: top-level build.
#
#   make            libp2pio (shared and static), the tools, the kernel module
#   make check      install dependencies, build, run every test this machine can run
#   make demo       install dependencies, build, boot the emulated NVMe + GPU-BAR machine,
#                   load the module, load and stream a model through the P2P path, report
#   make install    install the library, headers, p2pio.pc, tools and man pages under
#                   $(DESTDIR)$(PREFIX) (LIBDIR, INCLUDEDIR, BINDIR, MANDIR override parts)
#   make deb        Debian packages (debian/) in build/pkg/, as dpkg-buildpackage makes them
#
# Userspace objects go to $(BUILD) (default build/); the sanitizer build uses build-asan/.
# Components add sources by dropping files in place: userlib/src/<component>/**.c is the
# library (Documentation/architecture.md lists the components), tools/p2pio-*.c are the
# tools (tools/*.c beside them are shared by all tools), tests/unit/<component>/test-*.c are
# unit test programs (tests/unit/helpers/*.c are shared by all of them).

BUILD ?= build
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# The library's version, from the public header (P2PIO_VERSION_*).
VERSION := $(shell sed -n 's/^\#define P2PIO_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$$/\2/p' \
	userlib/include/p2pio/common.h | paste -sd.)
CC ?= cc
CLANG ?= clang
OPT ?= -O2
SAN ?=
CUDA_HOME ?= /usr/local/cuda

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Wformat=2 -Wvla
CPPFLAGS_ALL := -D_GNU_SOURCE -Iuserlib/include -Iuserlib/src -Itests/unit/helpers -Ikmod/uapi -MMD -MP
# cuda.h gives libcuda's types and enums; the library loads libcuda itself at run time.
ifneq ($(wildcard $(CUDA_HOME)/include/cuda.h),)
CPPFLAGS_ALL += -isystem $(CUDA_HOME)/include -DP2PIO_HAVE_CUDA_H=1
endif
CFLAGS_ALL := -std=c11 $(OPT) -g -fPIC $(WARN) $(SAN) $(CFLAGS)
LDLIBS_ALL := -luring -lnvme -lpci -ljson-c -ldl -lpthread -lm $(LDLIBS)
LDFLAGS_ALL := $(SAN) $(LDFLAGS)

# Sources one and two folders below userlib/src (a component, and a component's part such as
# engine/paths/). Base names are unique across the library: the static archive keys its
# members by base name.
LIB_SRCS := $(sort $(wildcard userlib/src/*/*.c userlib/src/*/*/*.c))
LIB_DUPS := $(shell printf '%s\n' $(notdir $(LIB_SRCS)) | sort | uniq -d)
ifneq ($(LIB_DUPS),)
$(error two library sources share a base name: $(LIB_DUPS))
endif
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)

# GPU kernels (the model verifier's): nvcc compiles userlib/src/model/kernels/*.cu into one fatbin
# (SASS for the common data-centre GPUs, PTX for the rest) that the library embeds as a byte
# array and loads with cuModuleLoadData. Without nvcc the array is empty and the library
# says at run time that GPU verification is unavailable.
NVCC ?= $(CUDA_HOME)/bin/nvcc
NVCC_ARCH ?= -gencode arch=compute_75,code=compute_75 -gencode arch=compute_80,code=sm_80 \
	-gencode arch=compute_90,code=sm_90
KERNEL_SRCS := $(sort $(wildcard userlib/src/model/kernels/*.cu))
KERNEL_OBJ := $(BUILD)/gen/model_kernels.o
LIB_OBJS += $(KERNEL_OBJ)
LIB_SO := $(BUILD)/lib/libp2pio.so
LIB_A := $(BUILD)/lib/libp2pio.a
LIB_MAP := userlib/libp2pio.map

TOOL_MAINS := $(sort $(wildcard tools/p2pio-*.c))
# The parts of one tool (tools/load_*.c: p2pio-load's; tools/moe_*.c: p2pio-moe's) link
# into that tool alone; every other tools/*.c is shared by all of them.
TOOL_OWN_p2pio-load := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tools/load_*.c)))
TOOL_OWN_p2pio-moe := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tools/moe_*.c)))
TOOL_OWN_OBJS := $(TOOL_OWN_p2pio-load) $(TOOL_OWN_p2pio-moe)
TOOL_COMMON := $(filter-out $(TOOL_MAINS) $(TOOL_OWN_OBJS:$(BUILD)/%.o=%.c),$(wildcard tools/*.c))
TOOL_COMMON_OBJS := $(TOOL_COMMON:%.c=$(BUILD)/%.o)
TOOLS := $(TOOL_MAINS:tools/%.c=$(BUILD)/bin/%)
# Tools link the static library (they run from the build tree as they are);
# TOOLS_LINK=shared links them against libp2pio.so.0 instead (the Debian packages do).
TOOLS_LINK ?= static
ifeq ($(TOOLS_LINK),shared)
TOOL_LIB_DEP := $(LIB_SO)
TOOL_LIB := -L$(BUILD)/lib -lp2pio
else
TOOL_LIB_DEP := $(LIB_A)
TOOL_LIB := $(LIB_A)
endif

# Man pages: man/*.1 for the tools are written by hand; section 3 (one page per function,
# one per documented struct, enum or typedef as 3type) and libp2pio(7) are generated from
# the kernel-doc comments of every public header (scripts/kdoc-man.py).
PUBLIC_HEADERS := $(sort $(wildcard userlib/include/p2pio/*.h))
MAN_STAMP := $(BUILD)/man/.stamp

# Test programs keep flat names (build/tests/test-NAME) wherever their source sits.
UNIT_MAINS := $(sort $(wildcard tests/unit/*/test-*.c))
UNIT_COMMON := $(wildcard tests/unit/helpers/*.c)
UNIT_COMMON_OBJS := $(UNIT_COMMON:%.c=$(BUILD)/%.o)
UNIT_TESTS := $(addprefix $(BUILD)/tests/,$(basename $(notdir $(UNIT_MAINS))))
UNIT_DUPS := $(shell printf '%s\n' $(notdir $(UNIT_MAINS)) | sort | uniq -d)
ifneq ($(UNIT_DUPS),)
$(error two unit tests share a name: $(UNIT_DUPS))
endif

# GPU test programs (tests/gpu/test-*.c) build everywhere and run under tests/gpu/run.sh,
# which skips where there is no GPU; they share the unit tests' helpers and their own
# (tests/gpu/*.c other than test-*: the CUDA set-up that skips without a GPU).
GPU_MAINS := $(sort $(wildcard tests/gpu/test-*.c))
GPU_TESTS := $(GPU_MAINS:tests/gpu/%.c=$(BUILD)/tests/gpu/%)
GPU_COMMON := $(filter-out $(GPU_MAINS),$(wildcard tests/gpu/*.c))
GPU_COMMON_OBJS := $(GPU_COMMON:%.c=$(BUILD)/%.o)

.PHONY: all lib tools tests kmod man deps check check-unit check-asan check-fuzz check-vm \
	check-gpu check-man check-python check-scripts check-pkg demo install deb clean
.DEFAULT_GOAL := all
# Keep object files of tools and tests between builds.
.SECONDARY:

all: lib tools tests kmod man

lib: $(LIB_SO) $(LIB_A)
tools: $(TOOLS)
tests: $(UNIT_TESTS) $(GPU_TESTS)
man: $(MAN_STAMP)

$(MAN_STAMP): $(PUBLIC_HEADERS) scripts/kdoc-man.py
	rm -rf $(BUILD)/man
	python3 scripts/kdoc-man.py --version $(VERSION) -o $(BUILD)/man $(PUBLIC_HEADERS)
	@touch $@

# pkg-config's description of the installed library, written at install time for the
# directories of that install.
PC_SED := sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|'

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CPPFLAGS) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/gen/model_kernels.fatbin: $(KERNEL_SRCS) userlib/src/model/kernels.h userlib/src/common/pattern.h
	@mkdir -p $(dir $@)
	@if [ -x "$(NVCC)" ]; then \
		echo "$(NVCC) --fatbin -o $@ userlib/src/model/kernels/verify.cu"; \
		$(NVCC) --fatbin $(NVCC_ARCH) -o $@ userlib/src/model/kernels/verify.cu; \
	else \
		echo "nvcc not found at $(NVCC): building without the GPU verification kernels"; \
		: > $@; \
	fi

$(BUILD)/gen/model_kernels.c: $(BUILD)/gen/model_kernels.fatbin scripts/embed.sh
	sh scripts/embed.sh p2pio_model_fatbin $< > $@

$(KERNEL_OBJ): $(BUILD)/gen/model_kernels.c
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(LIB_SO): $(LIB_OBJS) $(LIB_MAP)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libp2pio.so.0 -Wl,--version-script=$(LIB_MAP) \
		$(LDFLAGS_ALL) -o $@ $(LIB_OBJS) $(LDLIBS_ALL)

# Tools and tests link the static library so they run from the build tree as they are.
$(BUILD)/bin/%: $(BUILD)/tools/%.o $(TOOL_COMMON_OBJS) $(TOOL_LIB_DEP)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(TOOL_OWN_$*) $(TOOL_COMMON_OBJS) $(TOOL_LIB) $(LDLIBS_ALL)
$(BUILD)/bin/p2pio-load: $(TOOL_OWN_p2pio-load)
$(BUILD)/bin/p2pio-moe: $(TOOL_OWN_p2pio-moe)

$(BUILD)/tests/gpu/%: $(BUILD)/tests/gpu/%.o $(GPU_COMMON_OBJS) $(UNIT_COMMON_OBJS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(GPU_COMMON_OBJS) $(UNIT_COMMON_OBJS) $(LIB_A) $(LDLIBS_ALL)

# Unit tests of the tools' shared code (tools/*.c) link the objects they test, and what
# those call: UNIT_OBJS_test-NAME. test-bench-gate includes bench_gate.c and the code
# under test itself, with pthread_create failing where it says.
UNIT_OBJS_test-bench-burst := $(addprefix $(BUILD)/tools/,bench_burst.o bench_cuda.o bench_gate.o \
	bench_report.o cli.o)
UNIT_OBJS_test-bench-gate := $(addprefix $(BUILD)/tools/,bench_report.o bench_cuda.o cli.o)

# One link rule per unit test: build/tests/test-NAME from tests/unit/<component>/test-NAME.c.
define UNIT_LINK
$(BUILD)/tests/$(basename $(notdir $(1))): $(BUILD)/$(1:.c=.o) $$(UNIT_OBJS_$(basename $(notdir $(1)))) \
		$$(UNIT_COMMON_OBJS) $$(LIB_A)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS_ALL) -o $$@ $$< $$(UNIT_OBJS_$(basename $(notdir $(1)))) $$(UNIT_COMMON_OBJS) \
		$$(LIB_A) $$(LDLIBS_ALL)
endef
$(foreach t,$(UNIT_MAINS),$(eval $(call UNIT_LINK,$(t))))

# The kernel module builds against the Debian kernel the VM boots (scripts/kver.sh),
# not against the host's running kernel.
kmod:
	@if [ -f kmod/Kbuild ]; then $(MAKE) -C kmod; fi

deps:
	@sh scripts/deps.sh

# Unit tests run from the source root; they find their data under tests/data.
check-unit: tests tools
	prove -f --exec '' $(UNIT_TESTS)

check-asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		tests tools
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		prove -f --exec '' $(UNIT_TESTS:$(BUILD)/%=build-asan/%)

check-fuzz:
	@if [ -f tests/fuzz/Makefile ]; then $(MAKE) -f tests/fuzz/Makefile run; fi

# Every installed kernel of the matrix (scripts/kver.sh --all: 6.1 and 6.12), with the
# memory checkers on; VM_KERNELS, VM_VARIANTS, VM_TESTS narrow it (tests/vm/README.md).
check-vm: all
	@if [ -x tests/vm/run.sh ]; then tests/vm/run.sh; fi

check-gpu: all
	@if [ -x tests/gpu/run.sh ]; then tests/gpu/run.sh; fi

# Every exported function has a man page that man-db parses and groff renders cleanly;
# the generator's own test runs on a fixture header.
check-man: lib man
	python3 tests/man/test_kdoc_man.py
	sh scripts/check-man.sh $(BUILD)

# The Python package on host memory, every byte checked against the file (NumPy).
# Debian's python3 (with Debian's python3-numpy) even where another python3 is first on PATH.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
check-python: lib tools
	PYTHONDONTWRITEBYTECODE=1 P2PIO_LIBRARY=$(abspath $(LIB_SO)) P2PIO_BIN=$(abspath $(BUILD)/bin) \
		PYTHONPATH=$(abspath python) $(PYTHON) -m unittest discover -v -s python/tests

# The perf scripts' own logic (scripts/perf-paired.*): known answers, and a run on host
# memory with the built tools.
check-scripts: tools
	PYTHONDONTWRITEBYTECODE=1 P2PIO_BIN=$(abspath $(BUILD)/bin) \
		$(PYTHON) -m unittest discover -v -s tests/scripts

# Builds the Debian packages, installs them on this machine, builds a program with
# pkg-config alone, has DKMS build the module for every VM kernel and runs the VM's P2P
# read test with DKMS's module; lintian; then removes the packages again.
check-pkg:
	bash scripts/check-pkg.sh

# Debian packages of the working tree (tracked and new files), built in build/pkg/src.
deb:
	bash scripts/build-deb.sh

check: deps
	$(MAKE) all
	$(MAKE) check-unit
	$(MAKE) check-asan
	$(MAKE) check-fuzz
	$(MAKE) check-man
	$(MAKE) check-python
	$(MAKE) check-scripts
	$(MAKE) check-vm
	$(MAKE) check-pkg
	$(MAKE) check-gpu

demo: deps
	$(MAKE) all
	tests/vm/demo.sh

install: lib tools man
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(INCLUDEDIR)/p2pio \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(MANDIR)/man7
	install -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 0755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libp2pio.so.$(VERSION)
	ln -sf libp2pio.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libp2pio.so.0
	ln -sf libp2pio.so.0 $(DESTDIR)$(LIBDIR)/libp2pio.so
	$(PC_SED) userlib/p2pio.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/p2pio.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/p2pio.pc
	install -m 0644 userlib/include/p2pio.h kmod/uapi/p2pio_ioctl.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/p2pio/
	install -m 0755 $(TOOLS) $(DESTDIR)$(BINDIR)/
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(BUILD)/man/man3/* $(DESTDIR)$(MANDIR)/man3/
	install -m 0644 $(BUILD)/man/man7/* $(DESTDIR)$(MANDIR)/man7/

clean:
	rm -rf build build-asan build-fuzz
	@if [ -f kmod/Kbuild ]; then $(MAKE) -C kmod clean; fi

-include $(LIB_OBJS:.o=.d) $(TOOL_COMMON_OBJS:.o=.d) $(TOOL_OWN_OBJS:.o=.d) $(TOOLS:$(BUILD)/bin/%=$(BUILD)/tools/%.d) \
	$(UNIT_COMMON_OBJS:.o=.d) $(UNIT_MAINS:%.c=$(BUILD)/%.d) \
	$(GPU_TESTS:%=%.d) $(GPU_COMMON_OBJS:.o=.d)
