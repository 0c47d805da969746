/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what the fuzz targets share: their invariant check, and each input as the whole
 * of a file. FUZZ_NAME (defined before including this) names the target.
 */
#ifndef P2PIO_FUZZ_H
#define P2PIO_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * A failed invariant prints the target, the expression and the line, and aborts: libFuzzer
 * reports it as a crash and keeps the input that caused it.
 */
#define CHECK(x)                                                                          \
	do {                                                                              \
		if (!(x)) {                                                               \
			fprintf(stderr, "%s: invariant failed: %s (line %d)\n", FUZZ_NAME, \
				#x, __LINE__);                                            \
			abort();                                                          \
		}                                                                         \
	} while (0)

/*
 * The input as the whole of a file, since the readers take regular files: one memfd for
 * all inputs, truncated and written again each time. Its descriptor.
 */
static inline int fuzz_input_fd(const unsigned char *data, size_t size)
{
	static int fd = -1;

	if (fd < 0)
		fd = memfd_create(FUZZ_NAME, MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	return fd;
}

#endif /* P2PIO_FUZZ_H */
