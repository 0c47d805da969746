// SPDX-License-Identifier: MIT
/*
 * vmlib.c - guest test helpers: host channel, "GPU memory", /dev/p2pio wrappers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/fanotify.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "vmlib.h"

#define VM_CHANNEL "/dev/ttyS1"

static int chan = -1;
static unsigned int req_id;
static bool expect_bad;
static char why[512];

const char *vm_host_why(void)
{
	return why;
}

void vm_host_expect_mismatch(bool on)
{
	expect_bad = on;
}

static int chan_fd(void)
{
	if (chan < 0)
		chan = open(VM_CHANNEL, O_RDWR | O_NOCTTY | O_CLOEXEC);
	return chan;
}

/* Reads one reply line "@@R id ..."; other lines cannot arrive: only we ask. */
static int chan_reply(unsigned int id)
{
	char line[600], want[32];
	size_t n = 0;

	snprintf(want, sizeof(want), "@@R %s%u ", expect_bad ? "x" : "", id);
	for (;;) {
		struct pollfd p = { .fd = chan, .events = POLLIN };
		char c;
		ssize_t r;

		if (poll(&p, 1, 60000) != 1) {
			snprintf(why, sizeof(why), "no answer from the host");
			return -1;
		}
		r = read(chan, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != 1) {
			snprintf(why, sizeof(why), "host channel closed");
			return -1;
		}
		if (c == '\r')
			continue;
		if (c != '\n') {
			if (n < sizeof(line) - 1)
				line[n++] = c;
			continue;
		}
		line[n] = 0;
		n = 0;
		if (strncmp(line, want, strlen(want)))
			continue;	/* a stale answer to an abandoned request */
		if (!strcmp(line + strlen(want), "OK"))
			return 0;
		snprintf(why, sizeof(why), "%s", line + strlen(want));
		return -1;
	}
}

static int vm_host_send(char kind, unsigned int id, const char *fmt, va_list ap)
{
	char line[512];
	int n;

	if (chan_fd() < 0) {
		snprintf(why, sizeof(why), "cannot open %s: %s", VM_CHANNEL, strerror(errno));
		return -1;
	}
	n = snprintf(line, sizeof(line), "@@%c %s%u ", kind, expect_bad ? "x" : "", id);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	line[n++] = '\n';
	/*
	 * stdout shares the channel: what it holds must go first, and under its lock, which
	 * tap.h holds for each whole line, so that another thread's half-written TAP line is
	 * never flushed ahead of this request, which would then land inside it.
	 */
	flockfile(stdout);
	fflush(stdout);
	if (write(chan, line, n) != n) {
		funlockfile(stdout);
		snprintf(why, sizeof(why), "write to host: %s", strerror(errno));
		return -1;
	}
	funlockfile(stdout);
	return 0;
}

/* Queues a check or a fill; only vm_host_sync() waits for the host. */
static int vm_host_request(char kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int vm_host_request(char kind, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vm_host_send(kind, ++req_id, fmt, ap);
	va_end(ap);
	return ret;
}

static int vm_host_sync_send(unsigned int id, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vm_host_send('S', id, fmt, ap);
	va_end(ap);
	return ret;
}

int vm_host_sync(void)
{
	unsigned int id = ++req_id;

	return vm_host_sync_send(id, "") ? -1 : chan_reply(id);
}

int vm_host_pattern(uint64_t bar_off, uint64_t len, const char *name, uint64_t foff)
{
	return vm_host_request('V', "%#llx %#llx %#llx %#llx", (unsigned long long)bar_off,
			       (unsigned long long)len,
			       (unsigned long long)vm_pattern_seed(name),
			       (unsigned long long)foff);
}

int vm_host_file(uint64_t bar_off, uint64_t len, const char *name, uint64_t foff)
{
	return vm_host_request('F', "%#llx %#llx %s %#llx", (unsigned long long)bar_off,
			       (unsigned long long)len, name, (unsigned long long)foff);
}

int vm_host_fill_is(uint64_t bar_off, uint64_t len, int byte)
{
	return vm_host_request('Z', "%#llx %#llx %#x", (unsigned long long)bar_off,
			       (unsigned long long)len, byte & 0xff);
}

int vm_host_poison(uint64_t bar_off, uint64_t len, int byte)
{
	return vm_host_request('P', "%#llx %#llx %#x", (unsigned long long)bar_off,
			       (unsigned long long)len, byte & 0xff);
}

/* ---- destination memory ---- */

int vm_nvd_open(void)
{
	int fd = open(NVDOUBLE_DEVICE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int vm_gpu_alloc(int nvd_fd, struct vm_mem *m, uint64_t size, uint32_t va_offset,
		 uint32_t flags)
{
	struct nvdouble_alloc a = { .size = size, .va_offset = va_offset, .flags = flags };
	struct nvdouble_pages p = { 0 };

	memset(m, 0, sizeof(*m));
	if (ioctl(nvd_fd, NVDOUBLE_IOC_ALLOC, &a))
		return -errno;
	m->va = a.gpu_va;
	m->size = size;
	m->va_offset = va_offset;
	m->npages = a.npages;
	m->gpu = true;
	m->nvd_fd = nvd_fd;
	m->pages = calloc(a.npages, sizeof(*m->pages));
	if (!m->pages)
		return -ENOMEM;
	p.gpu_va = a.gpu_va;
	p.bar_offsets = (uintptr_t)m->pages;
	p.count = a.npages;
	if (ioctl(nvd_fd, NVDOUBLE_IOC_PAGES, &p) || p.count != a.npages)
		return -EIO;
	return 0;
}

int vm_gpu_lookup(int nvd_fd, uint64_t va, uint64_t size, struct vm_mem *m)
{
	struct nvdouble_pages p = { .gpu_va = va };

	memset(m, 0, sizeof(*m));
	if (ioctl(nvd_fd, NVDOUBLE_IOC_PAGES, &p))
		return -errno;
	m->va = va;
	m->size = size;
	m->va_offset = va % NVDOUBLE_PAGE_SIZE;
	m->npages = p.count;
	m->gpu = true;
	m->nvd_fd = -1;
	if ((uint64_t)m->va_offset + size > (uint64_t)p.count * NVDOUBLE_PAGE_SIZE)
		return -ERANGE;
	m->pages = calloc(p.count, sizeof(*m->pages));
	if (!m->pages)
		return -ENOMEM;
	p.bar_offsets = (uintptr_t)m->pages;
	if (ioctl(nvd_fd, NVDOUBLE_IOC_PAGES, &p))
		return -errno;
	return 0;
}

int vm_gpu_free(struct vm_mem *m)
{
	struct nvdouble_free f = { .gpu_va = m->va };
	int ret = ioctl(m->nvd_fd, NVDOUBLE_IOC_FREE, &f) ? -errno : 0;

	vm_mem_release(m);
	return ret;
}

int vm_nvd_info(struct nvdouble_info *info)
{
	int fd = vm_nvd_open(), ret;

	if (fd < 0)
		return fd;
	ret = ioctl(fd, NVDOUBLE_IOC_INFO, info) ? -errno : 0;
	close(fd);
	return ret;
}

int vm_nvd_set_bar1_kib(unsigned int kib)
{
	FILE *f = fopen("/sys/module/nvdouble/parameters/bar1_kib", "w");
	int ok;

	if (!f)
		return -errno;
	ok = fprintf(f, "%u\n", kib) > 0;
	return fclose(f) || !ok ? -EIO : 0;
}

void vm_bar_range(struct vm_mem *m, uint64_t bar_off, uint64_t size)
{
	uint32_t i;

	memset(m, 0, sizeof(*m));
	m->va = bar_off;
	m->size = size;
	m->va_offset = bar_off % NVDOUBLE_PAGE_SIZE;
	m->npages = (m->va_offset + size + NVDOUBLE_PAGE_SIZE - 1) / NVDOUBLE_PAGE_SIZE;
	m->pages = calloc(m->npages ? m->npages : 1, sizeof(*m->pages));
	for (i = 0; m->pages && i < m->npages; i++)
		m->pages[i] = bar_off - m->va_offset + (uint64_t)i * NVDOUBLE_PAGE_SIZE;
	m->nvd_fd = -1;
}

void vm_mem_release(struct vm_mem *m)
{
	free(m->pages);
	m->pages = NULL;
	m->npages = 0;
}

uint64_t vm_mem_bar(const struct vm_mem *m, uint64_t off)
{
	uint64_t x = m->va_offset + off;

	return m->pages[x / NVDOUBLE_PAGE_SIZE] + x % NVDOUBLE_PAGE_SIZE;
}

/* Calls fn on each run of [off, +len) that is contiguous in the BAR. */
static int vm_mem_runs(const struct vm_mem *m, uint64_t off, uint64_t len,
		       int (*fn)(uint64_t bar, uint64_t len, uint64_t done, const void *arg),
		       const void *arg)
{
	uint64_t done = 0;

	if (off > m->size || len > m->size - off) {
		snprintf(why, sizeof(why), "range %#llx+%#llx outside the memory",
			 (unsigned long long)off, (unsigned long long)len);
		return -1;
	}
	while (done < len) {
		uint64_t bar = vm_mem_bar(m, off + done);
		uint64_t run = NVDOUBLE_PAGE_SIZE - (m->va_offset + off + done) % NVDOUBLE_PAGE_SIZE;

		while (done + run < len && vm_mem_bar(m, off + done + run) == bar + run)
			run += NVDOUBLE_PAGE_SIZE;
		if (run > len - done)
			run = len - done;
		if (fn(bar, run, done, arg))
			return -1;
		done += run;
	}
	return 0;
}

struct vm_file_arg {
	const char *name;
	uint64_t foff;
	int byte;
	bool hostfile;
};

static int run_expect_file(uint64_t bar, uint64_t len, uint64_t done, const void *arg)
{
	const struct vm_file_arg *a = arg;

	if (a->hostfile)
		return vm_host_file(bar, len, a->name, a->foff + done);
	return vm_host_pattern(bar, len, a->name, a->foff + done);
}

static int run_expect_fill(uint64_t bar, uint64_t len, uint64_t done, const void *arg)
{
	return vm_host_fill_is(bar, len, ((const struct vm_file_arg *)arg)->byte);
}

static int run_poison(uint64_t bar, uint64_t len, uint64_t done, const void *arg)
{
	return vm_host_poison(bar, len, ((const struct vm_file_arg *)arg)->byte);
}

int vm_mem_expect_file(const struct vm_mem *m, uint64_t off, uint64_t len, const char *name,
		       uint64_t foff)
{
	struct vm_file_arg a = { .name = name, .foff = foff };

	/* model files are real host files; test files follow the pattern */
	a.hostfile = strstr(name, ".gguf") != NULL;
	return vm_mem_runs(m, off, len, run_expect_file, &a);
}

int vm_mem_expect_fill(const struct vm_mem *m, uint64_t off, uint64_t len, int byte)
{
	struct vm_file_arg a = { .byte = byte };

	return vm_mem_runs(m, off, len, run_expect_fill, &a);
}

int vm_mem_poison(const struct vm_mem *m, uint64_t off, uint64_t len, int byte)
{
	struct vm_file_arg a = { .byte = byte };

	return vm_mem_runs(m, off, len, run_poison, &a);
}

/* ---- /dev/p2pio ---- */

static int xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

int vm_p2p_version(int pfd, struct p2pio_version *v)
{
	memset(v, 0, sizeof(*v));
	return xioctl(pfd, P2PIO_IOC_VERSION, v);
}

int vm_p2p_open(void)
{
	struct p2pio_version v;
	int fd = open(P2PIO_DEVICE_PATH, O_RDWR | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = vm_p2p_version(fd, &v);
	if (!ret && v.abi_version != P2PIO_ABI_VERSION)
		ret = -EPROTO;
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

int vm_p2p_register(int pfd, int file_fd, struct p2pio_register_file *out)
{
	memset(out, 0, sizeof(*out));
	out->fd = file_fd;
	return xioctl(pfd, P2PIO_IOC_REGISTER_FILE, out);
}

int vm_p2p_unregister(int pfd, uint32_t handle)
{
	struct p2pio_handle_arg a = { .handle = handle };

	return xioctl(pfd, P2PIO_IOC_UNREGISTER_FILE, &a);
}

int vm_p2p_pin_gpu(int pfd, const struct vm_mem *m, uint32_t flags, struct p2pio_pin *out)
{
	memset(out, 0, sizeof(*out));
	out->provider = P2PIO_PROVIDER_NVIDIA;
	out->flags = flags;
	out->addr = m->va;
	out->length = m->size;
	return xioctl(pfd, P2PIO_IOC_PIN, out);
}

int vm_ivshmem_bdf(uint32_t *domain, uint32_t *bus, uint32_t *devfn)
{
	char path[300], buf[32];
	struct dirent *d;
	DIR *dir = opendir("/sys/bus/pci/devices");
	int ret = -ENODEV;

	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		unsigned int dom, b, slot, fn;
		FILE *f;
		bool ven = false, dev = false;

		if (sscanf(d->d_name, "%x:%x:%x.%x", &dom, &b, &slot, &fn) != 4)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", d->d_name);
		f = fopen(path, "r");
		if (f) {
			ven = fgets(buf, sizeof(buf), f) && strtoul(buf, NULL, 0) == 0x1af4;
			fclose(f);
		}
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", d->d_name);
		f = fopen(path, "r");
		if (f) {
			dev = fgets(buf, sizeof(buf), f) && strtoul(buf, NULL, 0) == 0x1110;
			fclose(f);
		}
		if (ven && dev) {
			*domain = dom;
			*bus = b;
			*devfn = (slot << 3) | fn;
			ret = 0;
			break;
		}
	}
	closedir(dir);
	return ret;
}

int vm_p2p_pin_bar(int pfd, const struct vm_mem *m, struct p2pio_pin *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	ret = vm_ivshmem_bdf(&out->pci_domain, &out->pci_bus, &out->pci_devfn);
	if (ret)
		return ret;
	out->provider = P2PIO_PROVIDER_PCIBAR;
	out->bar = 2;
	out->addr = m->va;
	out->length = m->size;
	return xioctl(pfd, P2PIO_IOC_PIN, out);
}

int vm_target_new(int pfd, int nvd, uint32_t provider, uint64_t size, uint32_t va_offset,
		  uint32_t aflags, uint32_t pflags, struct vm_target *t)
{
	int ret;

	memset(t, 0, sizeof(*t));
	ret = vm_gpu_alloc(nvd, &t->backing, size, va_offset, aflags);
	if (ret)
		return ret;
	if (provider == P2PIO_PROVIDER_PCIBAR) {
		/* a BAR range is contiguous: take the double's contiguous pages */
		vm_bar_range(&t->mem, vm_mem_bar(&t->backing, 0), size);
		ret = vm_p2p_pin_bar(pfd, &t->mem, &t->pin);
	} else {
		t->mem = t->backing;
		t->mem.pages = calloc(t->backing.npages, sizeof(*t->mem.pages));
		if (!t->mem.pages)
			return -ENOMEM;
		memcpy(t->mem.pages, t->backing.pages, t->backing.npages * sizeof(*t->mem.pages));
		ret = vm_p2p_pin_gpu(pfd, &t->mem, pflags, &t->pin);
	}
	if (ret) {
		vm_mem_release(&t->mem);
		vm_gpu_free(&t->backing);
	}
	return ret;
}

int vm_target_free(int pfd, struct vm_target *t)
{
	int ret = vm_p2p_unpin(pfd, t->pin.handle);

	vm_mem_release(&t->mem);
	vm_gpu_free(&t->backing);
	return ret;
}

int vm_p2p_unpin(int pfd, uint32_t handle)
{
	struct p2pio_handle_arg a = { .handle = handle };

	return xioctl(pfd, P2PIO_IOC_UNPIN, &a);
}

int vm_p2p_submit(int pfd, const struct p2pio_read *r, uint32_t n, uint32_t *accepted)
{
	struct p2pio_submit s = { .reads = (uintptr_t)r, .count = n };
	int ret = xioctl(pfd, P2PIO_IOC_SUBMIT, &s);

	if (accepted)
		*accepted = ret ? 0 : s.accepted;
	return ret;
}

int vm_p2p_reap(int pfd, struct p2pio_completion *c, uint32_t max, uint32_t min,
		int64_t timeout_ns, uint32_t *count)
{
	struct p2pio_reap r = {
		.completions = (uintptr_t)c, .max = max, .min = min, .timeout_ns = timeout_ns,
	};
	int ret = xioctl(pfd, P2PIO_IOC_REAP, &r);

	if (count)
		*count = ret ? 0 : r.count;
	return ret;
}

int vm_p2p_stats(int pfd, uint32_t scope, struct p2pio_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->scope = scope;
	return xioctl(pfd, P2PIO_IOC_STATS, s);
}

bool vm_nothing_left(int pfd)
{
	struct p2pio_stats s;

	return !vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s) && !s.inflight_cmds && !s.outstanding &&
	       !s.live_files && !s.live_pins && !s.live_prp_pages;
}

int vm_p2p_read(int pfd, uint32_t file, uint32_t mem, uint64_t foff, uint64_t len,
		uint64_t moff)
{
	struct p2pio_read r = {
		.file = file, .mem = mem, .file_offset = foff, .length = len,
		.mem_offset = moff, .user_tag = 0x5eed0000ull + len,
	};
	struct p2pio_completion c;
	uint32_t n = 0;
	int ret;

	ret = vm_p2p_submit(pfd, &r, 1, &n);
	if (ret)
		return ret;
	if (n != 1)
		return -EAGAIN;
	ret = vm_p2p_reap(pfd, &c, 1, 1, 10ll * 1000 * 1000 * 1000, &n);
	if (ret)
		return ret;
	if (n != 1)
		return -ETIMEDOUT;
	if (c.user_tag != r.user_tag)
		return -EBADMSG;
	if (!c.status && c.bytes != len)
		return -EMSGSIZE;
	return c.status;
}

/* ---- NVMe controllers ---- */

static int vm_read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	if (!fgets(buf, len, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, " \n")] = 0;
	return 0;
}

int vm_nvme_find(const char *serial, uint32_t nsid, char *bdf, size_t bdflen, char *ns,
		 size_t nslen)
{
	char path[512], buf[PATH_MAX];
	DIR *dir = opendir("/sys/class/nvme"), *cdir;
	struct dirent *d, *e;
	int ret = -ENODEV;

	while (dir && (d = readdir(dir))) {
		ssize_t n;

		if (strncmp(d->d_name, "nvme", 4))
			continue;
		snprintf(path, sizeof(path), "/sys/class/nvme/%s/serial", d->d_name);
		if (vm_read_line(path, buf, sizeof(buf)) || strcmp(buf, serial))
			continue;
		if (bdf) {
			const char *base;

			snprintf(path, sizeof(path), "/sys/class/nvme/%s/device", d->d_name);
			n = readlink(path, buf, sizeof(buf) - 1);
			if (n <= 0)
				break;
			buf[n] = 0;
			base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
			if (strlen(base) >= bdflen)
				break;
			memcpy(bdf, base, strlen(base) + 1);
		}
		if (!nsid) {
			ret = 0;
			break;
		}
		snprintf(path, sizeof(path), "/sys/class/nvme/%s", d->d_name);
		cdir = opendir(path);
		while (cdir && (e = readdir(cdir))) {
			unsigned long id;

			if (strncmp(e->d_name, "nvme", 4) || !strchr(e->d_name, 'n'))
				continue;
			snprintf(path, sizeof(path), "/sys/class/nvme/%.64s/%.64s/nsid",
				 d->d_name, e->d_name);
			if (vm_read_line(path, buf, sizeof(buf)))
				continue;
			id = strtoul(buf, NULL, 0);
			if (id != nsid || (ns && strlen(e->d_name) >= nslen))
				continue;
			if (ns)
				memcpy(ns, e->d_name, strlen(e->d_name) + 1);
			ret = 0;
		}
		if (cdir)
			closedir(cdir);
		break;
	}
	if (dir)
		closedir(dir);
	return ret;
}

/* ---- files and kernel attributes ---- */

int vm_write_str(const char *path, const char *s)
{
	size_t len = strlen(s);
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	close(fd);
	return ret;
}

int vm_read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = len > 1 ? read(fd, buf, len - 1) : 0;	/* a failed or empty read writes nothing */
	if (n < 0)
		ret = -errno;
	else if (!n)
		ret = len > 1 ? -ENODATA : -EINVAL;
	close(fd);
	if (ret)
		return ret;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

void vm_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

unsigned long vm_tainted(void)
{
	char buf[32] = "";

	vm_read_str("/proc/sys/kernel/tainted", buf, sizeof(buf));
	return strtoul(buf, NULL, 10);
}

static void *vm_fanotify_thread(void *arg)
{
	struct vm_fanotify *l = arg;
	char buf[4096] __attribute__((aligned(8)));

	while (!atomic_load(&l->stop)) {
		struct pollfd p = { .fd = l->fd, .events = POLLIN };
		const struct fanotify_event_metadata *m;
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = read(l->fd, buf, sizeof(buf));
		if (n <= 0)
			continue;
		for (m = (const void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n))
			if (!l->event(l->fd, m) && m->fd >= 0)
				close(m->fd);
	}
	return NULL;
}

int vm_fanotify_start(struct vm_fanotify *l,
		      bool (*event)(int fan, const struct fanotify_event_metadata *m))
{
	int ret;

	memset(l, 0, sizeof(*l));
	l->event = event;
	l->taint_before = vm_tainted();
	l->fd = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, O_RDONLY);
	if (l->fd < 0)
		return -errno;
	ret = pthread_create(&l->th, NULL, vm_fanotify_thread, l);
	if (ret) {
		close(l->fd);
		l->fd = -1;
		return -ret;
	}
	return 0;
}

bool vm_fanotify_allow_taint(struct vm_fanotify *l)
{
	unsigned long aux = 1ul << 16;
	FILE *f;

	if ((l->taint_before & aux) || !(vm_tainted() & aux) || l->taint_told)
		return false;
	l->taint_told = true;
	f = fopen("/tmp/taint-allowed", "w");
	if (f) {
		fprintf(f, "%lu\n", aux);
		fclose(f);
	}
	return true;
}

void vm_fanotify_stop(struct vm_fanotify *l)
{
	atomic_store(&l->stop, true);
	pthread_join(l->th, NULL);
	close(l->fd);
	l->fd = -1;
}

uint64_t vm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *vm_timed_read(void *arg)
{
	struct vm_timed_read *r = arg;

	r->status = vm_p2p_read(r->pfd, r->file, r->pin, 0, r->len, 0);
	atomic_store(&r->end_ns, vm_now_ns());
	return NULL;
}

uint64_t vm_fs_free(const char *path)
{
	struct statvfs sv;

	return statvfs(path, &sv) ? 0 : (uint64_t)sv.f_bavail * sv.f_frsize;
}

int vm_fs_wait_free(const char *path, uint64_t bytes, int timeout_ms)
{
	int waited;

	for (waited = 0; vm_fs_free(path) < bytes; waited += 20) {
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		usleep(20000);
	}
	return 0;
}

int vm_dedupe(int src, int dst, uint64_t len, uint64_t *deduped)
{
	struct file_dedupe_range *r = calloc(1, sizeof(*r) + sizeof(r->info[0]));
	int ret;

	if (!r)
		return -ENOMEM;
	r->src_length = len;
	r->dest_count = 1;
	r->info[0].dest_fd = dst;
	ret = ioctl(src, FIDEDUPERANGE, r) ? -errno : 0;
	if (!ret && r->info[0].status != FILE_DEDUPE_RANGE_SAME)
		ret = r->info[0].status < 0 ? r->info[0].status : -EILSEQ;
	if (deduped)
		*deduped = ret ? 0 : r->info[0].bytes_deduped;
	free(r);
	return ret;
}

int vm_file_extents(int fd, struct vm_extent *out, int max)
{
	enum { BATCH = 256 };
	size_t sz = sizeof(struct fiemap) + BATCH * sizeof(struct fiemap_extent);
	struct fiemap *fm = malloc(sz);
	uint64_t start = 0;
	int n = 0, last = 0;
	uint32_t i;

	if (!fm)
		return -ENOMEM;
	while (!last) {
		memset(fm, 0, sz);
		fm->fm_start = start;
		fm->fm_length = ~0ull - start;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, fm)) {
			free(fm);
			return -errno;
		}
		if (!fm->fm_mapped_extents)
			break;
		for (i = 0; i < fm->fm_mapped_extents; i++) {
			struct fiemap_extent *e = &fm->fm_extents[i];

			if (n < max)
				out[n++] = (struct vm_extent){ e->fe_logical, e->fe_physical,
							       e->fe_length };
			start = e->fe_logical + e->fe_length;
			if (e->fe_flags & FIEMAP_EXTENT_LAST)
				last = 1;
		}
	}
	free(fm);
	return n;
}

int vm_write_pattern(int fd, const char *name, uint64_t off, uint64_t len)
{
	enum { BUF = 256 * 1024 };
	char *buf = malloc(BUF);	/* not static: callers may be threads */
	uint64_t seed = vm_pattern_seed(name);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	while (len) {
		size_t n = len < BUF ? len : BUF;
		ssize_t w;

		vm_pattern_fill(seed, off, buf, n);
		w = pwrite(fd, buf, n, off);
		if (w != (ssize_t)n) {
			ret = w < 0 ? -errno : -EIO;
			break;
		}
		off += n;
		len -= n;
	}
	free(buf);
	return ret;
}

uint64_t vm_fill_fs(int fd)
{
	uint64_t chunk, end = 0;
	int round;

	for (round = 0; round < 2; round++) {
		for (chunk = 64 * VM_MIB; chunk >= 4096;) {
			if (!fallocate(fd, 0, end, chunk))
				end += chunk;
			else if (errno == ENOSPC)
				chunk /= 2;
			else
				break;
		}
		syncfs(fd);
	}
	return end;
}

uint64_t vm_write_pattern_over(int fd, const char *name, const struct vm_extent *have,
			       int nhave, const struct vm_extent *old, int nold)
{
	uint64_t covered = 0;
	int i, j;

	for (i = 0; i < nold; i++) {
		for (j = 0; j < nhave; j++) {
			uint64_t lo = old[i].physical > have[j].physical ? old[i].physical :
									     have[j].physical;
			uint64_t hi_o = old[i].physical + old[i].length;
			uint64_t hi_h = have[j].physical + have[j].length;
			uint64_t hi = hi_o < hi_h ? hi_o : hi_h;

			if (lo < hi &&
			    !vm_write_pattern(fd, name, have[j].logical + (lo - have[j].physical),
					      hi - lo))
				covered += hi - lo;
		}
	}
	return covered;
}

int vm_make_pattern_file(const char *path, const char *pattern_of, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ret;

	if (fd < 0)
		return -errno;
	ret = vm_write_pattern(fd, pattern_of, 0, size);
	if (!ret && fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

/* ---- environment ---- */

const char *vm_variant(void)
{
	const char *v = getenv("VM_VARIANT");

	return v ? v : "noiommu";
}

const char *vm_phase(void)
{
	const char *v = getenv("VM_PHASE");

	return v ? v : "default";
}

bool vm_file_next(int *cursor, struct vm_file *f)
{
	char line[512];
	FILE *fp = fopen("/etc/vm-files", "r");
	int i = 0;
	bool found = false;

	if (!fp)
		return false;
	while (fgets(line, sizeof(line), fp)) {
		unsigned long long size;

		if (line[0] == '#' || i++ < *cursor)
			continue;
		if (sscanf(line, "%63s %63s %llu %15s", f->mnt, f->name, &size, f->kind) != 4)
			continue;
		f->size = size;
		snprintf(f->path, sizeof(f->path), "%s/%s", f->mnt, f->name);
		found = true;
		break;
	}
	fclose(fp);
	*cursor = i;
	return found;
}

const char *vm_file_path(const char *name)
{
	static struct vm_file f;
	int cur = 0;

	while (vm_file_next(&cur, &f))
		if (!strcmp(f.name, name))
			return f.path;
	return NULL;
}

static bool vm_drop_to(const gid_t *groups, size_t n)
{
	return !setgroups(n, groups) && !setresgid(65534, 65534, 65534) &&
	       !setresuid(65534, 65534, 65534) && geteuid() == 65534;
}

bool vm_drop_privileges(void)
{
	static const gid_t g[] = { 65534, VM_P2PIO_GID };

	return vm_drop_to(g, 2);
}

bool vm_drop_privileges_nogroup(void)
{
	static const gid_t g[] = { 65534 };

	return vm_drop_to(g, 1);
}

uint64_t vm_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

int vm_nvme_ctrl_bdf(const char *serial, char *bdf, size_t len)
{
	char path[300], buf[64], link[PATH_MAX];
	struct dirent *d;
	DIR *dir = opendir("/sys/class/nvme");
	int ret = -ENODEV;

	while (dir && (d = readdir(dir))) {
		FILE *f;
		ssize_t n;

		if (strncmp(d->d_name, "nvme", 4))
			continue;
		snprintf(path, sizeof(path), "/sys/class/nvme/%s/serial", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		buf[0] = 0;
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
		buf[strcspn(buf, " \n")] = 0;
		if (strcmp(buf, serial))
			continue;
		snprintf(path, sizeof(path), "/sys/class/nvme/%s/device", d->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			const char *base;

			link[n] = 0;
			base = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
			if (strlen(base) < len) {
				memcpy(bdf, base, strlen(base) + 1);
				ret = 0;
			}
		}
		break;
	}
	if (dir)
		closedir(dir);
	return ret;
}
