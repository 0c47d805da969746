// SPDX-License-Identifier: MIT
/*
 * mkpattern - writes test files with the content pattern.h defines.
 *
 *	mkpattern PATH SIZE [PATH SIZE]...
 *
 * The content follows from the file's basename, so the guest and the host can check any
 * byte of it without a copy of the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"

static int write_one(const char *path, uint64_t size)
{
	static unsigned char buf[1 << 20];
	uint64_t seed = vm_pattern_seed(path), off = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		fprintf(stderr, "mkpattern: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (off < size) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		vm_pattern_fill(seed, off, buf, n);
		if (write(fd, buf, n) != (ssize_t)n) {
			fprintf(stderr, "mkpattern: write %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
		off += n;
	}
	return close(fd);
}

int main(int argc, char **argv)
{
	int i;

	if (argc < 3 || argc % 2 == 0) {
		fprintf(stderr, "usage: mkpattern PATH SIZE [PATH SIZE]...\n");
		return 2;
	}
	for (i = 1; i < argc; i += 2)
		if (write_one(argv[i], strtoull(argv[i + 1], NULL, 0)))
			return 1;
	return 0;
}
