// SPDX-License-Identifier: MIT
/*
 * vmhost - the host end of the VM tests' channel (the guest's second serial port).
 *
 *	vmhost SOCKET BARFILE OUTDIR [FILESDIR]
 *
 * Connects to QEMU's chardev socket and reads the guest's lines until "@@DONE" or EOF:
 *
 *	@@BEGIN name		TAP lines up to the matching @@END go to OUTDIR/name.tap
 *	@@END name rc		the test program's exit status, kept in OUTDIR/name.rc
 *	@@V id off len seed foff  compare BAR bytes [off, off+len) with the test pattern of
 *				the file whose seed is given, from file offset foff
 *	@@F id off len name foff  the same against FILESDIR/name, a real host file
 *	@@Z id off len byte	every byte of the range must equal byte (nothing landed)
 *	@@P id off len byte	fill the range with byte (poison before a read)
 *	@@S id			sync: answered "@@R id OK" when every check since the
 *				last sync matched, else "@@R id BAD <count>: <first failure>"
 *	@@DONE			the guest finished: answered "@@R done OK" once OUTDIR/verified
 *				is written. The guest powers off only then: what its UART
 *				had not sent by the poweroff would be lost (up to the 4 KiB of
 *				the tty's buffer; QEMU's socket holds only a few hundred bytes
 *				of it, one skb a byte), and the host reads slower than the
 *				guest writes whenever it is busy or descheduled. vmhost then
 *				reads on until QEMU exits: closing first would make QEMU drop
 *				the connection (POLLHUP) and with it the answer not yet read.
 *
 * Numbers are hexadecimal ("0x" optional). Only syncs are answered, so the guest streams
 * its checks and waits once per batch (a round trip over the emulated UART is slow); it
 * syncs after poisoning too, before the reads start. A mismatch counts as a failure of
 * the run unless the request id starts with 'x' (a check the guest expects to fail).
 * BARFILE is the host file behind the ivshmem BAR: QEMU maps it shared, so what the emulated NVMe
 * controller DMAs into the BAR is in this file when the guest sees the completion. Every
 * byte checked is counted in OUTDIR/verified (bytes and requests), so the run can report
 * how much landed and was compared.
 *
 * VMHOST_STALL="LINE:SECONDS[,LINE:SECONDS...]" (a test of the harness, host/test-slowreader.sh):
 * after the LINEth line from the guest, stop reading for SECONDS, as a host under load does.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"

static int chan = -1;
static unsigned char *bar;
static uint64_t bar_size;
static const char *outdir, *filesdir;
static FILE *tap;
static uint64_t verified_bytes, verified_reqs, failed_reqs;

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("vmhost: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static int chan_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, tries;

	if (strlen(path) >= sizeof(sa.sun_path))
		die("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	/* QEMU creates the socket when it starts; wait for it. */
	for (tries = 0; tries < 600; tries++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		usleep(100000);
	}
	die("cannot connect to %s: %s", path, strerror(errno));
	return -1;
}

static void reply(const char *id, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n, off = 0;

	n = snprintf(buf, sizeof(buf), "@@R %s ", id);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	while (off < n) {
		ssize_t w = write(chan, buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write to guest: %s", strerror(errno));
		off += w;
	}
}

/* Failures since the last sync: their count and the first one's description. */
static unsigned int pending_fail;
static char first_fail[400];

static void fail(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *id, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* ids starting with 'x' ask for a check that is meant to fail (testing the test) */
	if (id[0] != 'x')
		failed_reqs++;
	if (pending_fail++)
		return;
	n = snprintf(first_fail, sizeof(first_fail), "request %s: ", id);
	va_start(ap, fmt);
	vsnprintf(first_fail + n, sizeof(first_fail) - n, fmt, ap);
	va_end(ap);
}

static void sync_reply(const char *id)
{
	if (!pending_fail)
		reply(id, "OK");
	else
		reply(id, "BAD %u failed, first %s", pending_fail, first_fail);
	pending_fail = 0;
}

static int range_ok(const char *id, uint64_t off, uint64_t len)
{
	if (off > bar_size || len > bar_size - off) {
		fail(id, "range %#" PRIx64 "+%#" PRIx64 " outside the %#" PRIx64 "-byte BAR",
		     off, len, bar_size);
		return 0;
	}
	return 1;
}

static void checked(uint64_t len)
{
	verified_bytes += len;
	verified_reqs++;
}

static void mismatch(const char *id, uint64_t off, uint64_t i, unsigned got, unsigned want)
{
	fail(id, "BAR offset %#" PRIx64 " (byte %" PRIu64 " of the range): got %#04x, expected %#04x",
	     off + i, i, got, want);
}

static void req_pattern(const char *id, uint64_t off, uint64_t len, uint64_t seed, uint64_t foff)
{
	uint64_t i;
	unsigned char want;

	if (!range_ok(id, off, len))
		return;
	i = vm_pattern_check(seed, foff, bar + off, len);
	if (i == len) {
		checked(len);
		return;
	}
	vm_pattern_fill(seed, foff + i, &want, 1);
	mismatch(id, off, i, bar[off + i], want);
}

static void req_file(const char *id, uint64_t off, uint64_t len, const char *name, uint64_t foff)
{
	static unsigned char buf[1 << 20];
	char path[4096];
	uint64_t done = 0;
	int fd;

	if (!range_ok(id, off, len))
		return;
	if (!filesdir || strstr(name, "..") ||
	    snprintf(path, sizeof(path), "%s/%s", filesdir, name) >= (int)sizeof(path)) {
		fail(id, "no host file %s", name);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail(id, "cannot open host file %s: %s", name, strerror(errno));
		return;
	}
	while (done < len) {
		size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		ssize_t r = pread(fd, buf, n, foff + done);
		size_t i;

		if (r <= 0) {
			fail(id, "host file %s ends before offset %" PRIu64, name, foff + done);
			close(fd);
			return;
		}
		for (i = 0; i < (size_t)r; i++) {
			if (bar[off + done + i] != buf[i]) {
				mismatch(id, off, done + i, bar[off + done + i], buf[i]);
				close(fd);
				return;
			}
		}
		done += r;
	}
	close(fd);
	checked(len);
}

static void req_fill(const char *id, uint64_t off, uint64_t len, unsigned byte, int check)
{
	uint64_t i;

	if (!range_ok(id, off, len))
		return;
	if (!check) {
		memset(bar + off, (int)byte, len);
		return;
	}
	for (i = 0; i < len; i++) {
		if (bar[off + i] != byte) {
			mismatch(id, off, i, bar[off + i], byte);
			return;
		}
	}
	checked(len);
}

static void request(char *line)
{
	char kind, id[32], arg[256];
	uint64_t off, len, x, y;

	kind = line[2];
	if (kind == 'V' && sscanf(line + 3, "%31s %" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64,
				   id, &off, &len, &x, &y) == 5)
		req_pattern(id, off, len, x, y);
	else if (kind == 'F' && sscanf(line + 3, "%31s %" SCNx64 " %" SCNx64 " %255s %" SCNx64,
					id, &off, &len, arg, &y) == 5)
		req_file(id, off, len, arg, y);
	else if ((kind == 'Z' || kind == 'P') &&
		 sscanf(line + 3, "%31s %" SCNx64 " %" SCNx64 " %" SCNx64, id, &off, &len, &x) == 4)
		req_fill(id, off, len, (unsigned)x & 0xff, kind == 'Z');
	else if (kind == 'S' && sscanf(line + 3, "%31s", id) == 1)
		sync_reply(id);
	else
		fail("?", "malformed request: %.80s", line);
}

static FILE *open_out(const char *name, const char *ext, const char *mode)
{
	char path[4096];
	size_t i;
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s%s", outdir, name, ext) >= (int)sizeof(path))
		die("name too long");
	/* names are "phase.test": keep them plain file names */
	for (i = strlen(outdir) + 1; path[i]; i++)
		if (path[i] == '/')
			path[i] = '_';
	f = fopen(path, mode);
	if (!f)
		die("%s: %s", path, strerror(errno));
	return f;
}

/* Whether @line holds "@@K " (K a request's kind) anywhere but at its start. */
static bool embedded_request(const char *line)
{
	const char *p;

	for (p = line; (p = strstr(p, "@@")); p++)
		if (p != line && p[2] && strchr("VFZPS", p[2]) && p[3] == ' ')
			return true;
	return false;
}

static void line_in(char *line)
{
	static time_t began;
	char name[256];
	int rc;
	FILE *f;

	if (!strncmp(line, "@@BEGIN ", 8) && sscanf(line + 8, "%255s", name) == 1) {
		if (tap)
			fclose(tap);
		tap = open_out(name, ".tap", "w");
		began = time(NULL);
		return;
	}
	if (!strncmp(line, "@@END ", 6) && sscanf(line + 6, "%255s %d", name, &rc) == 2) {
		if (tap)
			fclose(tap);
		tap = NULL;
		f = open_out(name, ".rc", "w");
		fprintf(f, "%d\n", rc);
		fclose(f);
		printf("vmhost: %s exited %d after %ld s\n", name, rc, (long)(time(NULL) - began));
		fflush(stdout);
		return;
	}
	if (line[0] == '@' && line[1] == '@' && strchr("VFZPS", line[2]) && line[2] && line[3] == ' ') {
		request(line);
		return;
	}
	/*
	 * A request inside another line: a guest's threads interleaved a TAP line with it
	 * (tap.h and vmlib lock stdout against that). Its check never ran, so the run fails.
	 */
	if (embedded_request(line))
		fail("embedded", "a request inside another line: %.200s", line);
	if (tap) {
		fprintf(tap, "%s\n", line);
		fflush(tap);
	} else {
		printf("guest: %s\n", line);
		fflush(stdout);
	}
}

/* VMHOST_STALL: after line stall_line[i], sleep stall_s[i] seconds without reading. */
#define MAX_STALLS 8
static unsigned long stall_line[MAX_STALLS];
static unsigned int stall_s[MAX_STALLS], nstalls;

static void stall_parse(const char *spec)
{
	const char *p = spec;
	char *end;

	while (p && *p) {
		if (nstalls == MAX_STALLS)
			die("VMHOST_STALL: more than %d stalls", MAX_STALLS);
		stall_line[nstalls] = strtoul(p, &end, 10);
		if (end == p || *end != ':')
			die("VMHOST_STALL: want LINE:SECONDS[,...], got %s", spec);
		p = end + 1;
		stall_s[nstalls] = strtoul(p, &end, 10);
		if (end == p || (*end && *end != ','))
			die("VMHOST_STALL: want LINE:SECONDS[,...], got %s", spec);
		nstalls++;
		p = *end ? end + 1 : NULL;
	}
}

static void stall_after(unsigned long line)
{
	unsigned int i;

	for (i = 0; i < nstalls; i++) {
		if (stall_line[i] != line)
			continue;
		printf("vmhost: VMHOST_STALL: not reading for %u s after line %lu\n", stall_s[i], line);
		fflush(stdout);
		sleep(stall_s[i]);
	}
}

static void write_verified(void)
{
	FILE *f = open_out("verified", "", "w");

	fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", verified_bytes, verified_reqs,
		failed_reqs);
	fclose(f);
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	unsigned long lines = 0, after = 0;
	size_t have = 0;
	bool done = false, dropping = false;
	struct stat st;
	FILE *f;
	int fd;

	if (argc < 4 || argc > 5)
		die("usage: vmhost SOCKET BARFILE OUTDIR [FILESDIR]");
	outdir = argv[3];
	filesdir = argc > 4 ? argv[4] : NULL;

	fd = open(argv[2], O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		die("%s: %s", argv[2], strerror(errno));
	bar_size = st.st_size;
	bar = mmap(NULL, bar_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (bar == MAP_FAILED)
		die("mmap %s: %s", argv[2], strerror(errno));
	close(fd);

	if (getenv("VMHOST_STALL"))
		stall_parse(getenv("VMHOST_STALL"));

	chan = chan_connect(argv[1]);
	for (;;) {
		ssize_t r = read(chan, buf + have, sizeof(buf) - 1 - have);
		char *start = buf, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;		/* QEMU exited */
		have += r;
		if (dropping) {
			/* the rest of an overlong line, up to its end */
			nl = memchr(buf, '\n', have);
			if (!nl) {
				have = 0;
				continue;
			}
			start = nl + 1;
			dropping = false;
		}
		while ((nl = memchr(start, '\n', buf + have - start))) {
			*nl = 0;
			if (nl > start && nl[-1] == '\r')
				nl[-1] = 0;
			if (done) {
				/* nothing may follow @@DONE: say so, keep reading until QEMU exits */
				if (!after++)
					printf("vmhost: the guest wrote after @@DONE:\n");
				printf("guest: %s\n", start);
				fflush(stdout);
			} else if (!strcmp(start, "@@DONE")) {
				done = true;
				if (tap)
					fclose(tap);
				tap = NULL;
				write_verified();
				/* every line before it is in: the guest may power off */
				reply("done", "OK");
			} else {
				line_in(start);
			}
			start = nl + 1;
			stall_after(++lines);
		}
		have -= start - buf;
		memmove(buf, start, have);
		if (have == sizeof(buf) - 1) {
			/*
			 * A line longer than the buffer: no TAP line or request is, and cut
			 * into pieces each would be taken as a line (a piece can read as a
			 * result or a request). Dropped whole, and the run fails.
			 */
			fail("long", "a guest line over %zu bytes (dropped): %.60s", sizeof(buf) - 1,
			     buf);
			printf("vmhost: a guest line over %zu bytes, dropped: %.60s...\n",
			       sizeof(buf) - 1, buf);
			fflush(stdout);
			dropping = true;
			have = 0;
		}
	}
	if (done)
		return 0;
	f = open_out("vmhost", ".eof", "w");	/* the guest never said @@DONE */
	fclose(f);
	if (tap)
		fclose(tap);
	write_verified();
	return 0;
}
