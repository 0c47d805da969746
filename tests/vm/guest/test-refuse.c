// SPDX-License-Identifier: MIT
/*
 * test-refuse - what p2pio must refuse, with the documented errno, and that nothing
 * lands in the BAR when it does:
 *  - files: metadata/PI namespace, virtio-blk, loop device, tmpfs, a directory, a file
 *    opened write-only, holes and unwritten extents (over a deleted secret), a file open
 *    for writing elsewhere (ETXTBSY), and writers refused while registered;
 *  - an unprivileged user: a file they cannot read (even via O_PATH), a file they may
 *    read but neither own nor write (registering would lock its writers out: EACCES),
 *    nor one they may only append to (EACCES),
 *    GPU memory of another process, pcibar pins, /dev/p2pio without its group; what
 *    they may do still works;
 *  - per-user limits (module parameters max_user_*), a registration whose result cannot
 *    be copied out (undone), handles not reused at once;
 *  - requests: misaligned, out of range, zero or too long, reserved bits, bad handles,
 *    bad batches; pins with bad fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define POISON 0xc3

static int pfd, nvd;

/* Registers @path opened with @flags; returns 0 or -errno (unregistering on success). */
static int try_register(const char *path, int flags)
{
	struct p2pio_register_file reg;
	int fd = open(path, flags), ret;

	if (fd < 0)
		return -1000 - errno;	/* distinct from any register errno */
	ret = vm_p2p_register(pfd, fd, &reg);
	if (!ret)
		vm_p2p_unregister(pfd, reg.handle);
	close(fd);
	return ret;
}

static void refuse_file(const char *name, int want, const char *why)
{
	const char *path = vm_file_path(name);

	if (!path) {
		tap_skip(1, "file not made");
		return;
	}
	tap_is_int(try_register(path, O_RDONLY), want, "%s refused: %s", name, why);
}

static void files(void)
{
	static const char *const tags[] = { "a1", "a2", "b1", "b2" };
	char name[64];
	size_t i;
	int fd;

	refuse_file("md-1m", -EPROTONOSUPPORT, "namespace with metadata/PI (separate buffer)");
	refuse_file("mx-1m", -EPROTONOSUPPORT,
		    "namespace with metadata/PI in extended LBAs (no integrity profile)");
	refuse_file("vb-1m", -ENOTBLK, "virtio-blk");
	refuse_file("lp-1m", -ENOTBLK, "loop device");
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "%s-holes", tags[i]);
		refuse_file(name, -ENODATA, "a hole");
		snprintf(name, sizeof(name), "%s-unwritten", tags[i]);
		refuse_file(name, -ENODATA, "unwritten extents");
	}

	fd = open("/tmp/tmpfs-file", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, "x", 1) != 1)
			tap_diag("write to tmpfs failed");
		close(fd);
	}
	tap_is_int(try_register("/tmp/tmpfs-file", O_RDONLY), -EOPNOTSUPP, "tmpfs refused");
	tap_is_int(try_register("/mnt/a1", O_RDONLY | O_DIRECTORY), -EINVAL, "a directory refused");
	tap_is_int(try_register(vm_file_path("a1-pub"), O_WRONLY), -EBADF,
		   "a file opened write-only refused");
	{
		struct p2pio_register_file reg;

		tap_is_int(vm_p2p_register(pfd, -1, &reg), -EBADF, "fd -1 refused");
		tap_is_int(vm_p2p_register(pfd, 999, &reg), -EBADF, "a closed fd refused");
		memset(&reg, 0, sizeof(reg));
		reg.fd = open(vm_file_path("a1-pub"), O_RDONLY);
		reg.reserved[2] = 1;
		tap_ok(ioctl(pfd, P2PIO_IOC_REGISTER_FILE, &reg) && errno == EINVAL,
		       "register with a reserved field set: EINVAL");
		reg.reserved[2] = 0;
		reg.flags = P2PIO_REGISTER_NOWAIT << 1;
		tap_ok(ioctl(pfd, P2PIO_IOC_REGISTER_FILE, &reg) && errno == EINVAL,
		       "register with unknown flags: EINVAL");
		reg.flags = P2PIO_REGISTER_NOWAIT | 1u << 31;
		tap_ok(ioctl(pfd, P2PIO_IOC_REGISTER_FILE, &reg) && errno == EINVAL,
		       "register with NOWAIT and an unknown flag: EINVAL");
		reg.flags = P2PIO_REGISTER_NOWAIT;
		if (tap_ok(!ioctl(pfd, P2PIO_IOC_REGISTER_FILE, &reg),
			   "register with NOWAIT, nothing in the way: registered"))
			vm_p2p_unregister(pfd, reg.handle);
		close(reg.fd);
	}
}

static void writers(void)
{
	const char *path = vm_file_path("b2-wr");
	struct p2pio_register_file reg;
	int w, r, ret;

	w = open(path, O_WRONLY);
	tap_is_int(try_register(path, O_RDONLY), -ETXTBSY, "a file open for writing: ETXTBSY");
	close(w);
	w = open(path, O_RDWR);
	tap_is_int(try_register(path, O_RDWR), -ETXTBSY,
		   "even through its own O_RDWR fd while another writer exists: ETXTBSY");
	close(w);

	r = open(path, O_RDONLY);
	ret = vm_p2p_register(pfd, r, &reg);
	tap_is_int(ret, 0, "registered once no writer is left");
	w = open(path, O_WRONLY);
	tap_ok(w < 0 && errno == ETXTBSY, "while registered, open for writing: ETXTBSY");
	if (w >= 0)
		close(w);
	tap_ok(truncate(path, 4096) && errno == ETXTBSY, "while registered, truncate: ETXTBSY");
	tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "unregister");
	w = open(path, O_WRONLY);
	tap_ok(w >= 0, "after unregistering, writers may open it again");
	if (w >= 0)
		close(w);
	close(r);
}

/* In a child: drop to nobody, then run @fn, whose TAP result comes back as exit status. */
static int as_nobody(int (*fn)(void))
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		if (!vm_drop_privileges())
			_exit(99);
		pfd = vm_p2p_open();	/* its own fd, opened as nobody */
		_exit(pfd < 0 ? 100 - pfd : fn());	/* 100 + errno */
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Exit codes: 0 what was expected, else the step that differed. */
static int nobody_secret(void)
{
	struct p2pio_register_file reg;
	const char *path = vm_file_path("a1-secret");
	int fd;

	if (open(path, O_RDONLY) >= 0)
		return 1;		/* the test setup is wrong, not p2pio */
	fd = open(path, O_PATH);
	if (fd < 0)
		return 2;
	/* an O_PATH fd does not allow reading: neither may p2pio */
	return vm_p2p_register(pfd, fd, &reg) == -EBADF ? 0 : 3;
}

static int nobody_pcibar(void)
{
	struct vm_mem m;
	struct p2pio_pin pin;
	int ret;

	vm_bar_range(&m, 0, 65536);
	ret = vm_p2p_pin_bar(pfd, &m, &pin);
	return ret == -EPERM ? 0 : 10 + (ret < 0 ? -ret : 0);
}

/* The module's counters are every user's I/O: nobody sees their own fd's only. */
static int nobody_stats(void)
{
	struct p2pio_stats s;

	if (vm_p2p_stats(pfd, P2PIO_STATS_GLOBAL, &s) != -EPERM)
		return 1;
	return vm_p2p_stats(pfd, P2PIO_STATS_FD, &s) ? 2 : 0;
}

/*
 * The same counters in debugfs are root's alone: mode 0400, not left to the mount's mode
 * (debugfs is mounted 0700 by default, and may be mounted otherwise).
 */
static void debugfs_stats_mode(void)
{
	const char *path = "/sys/kernel/debug/p2pio/stats";
	struct stat st;

	if (stat(path, &st) && mount("none", "/sys/kernel/debug", "debugfs", 0, NULL) &&
	    errno != EBUSY) {
		tap_skip(1, "debugfs cannot be mounted");
		return;
	}
	if (stat(path, &st))
		st.st_mode = 0;
	tap_ok((st.st_mode & 07777) == 0400, "%s is root's only (mode %o)", path,
	       (unsigned)(st.st_mode & 07777));
}

/*
 * Registers test file @name through a read-only fd of its own, and unregisters it again
 * where that worked: 0, the registration's -errno, 1 where the file does not open, 2
 * where the unregistration fails. (A child's exit status: what a refusal test expects.)
 */
static int register_once(const char *name)
{
	struct p2pio_register_file reg;
	int fd = open(vm_file_path(name), O_RDONLY), ret;

	if (fd < 0)
		return 1;
	ret = vm_p2p_register(pfd, fd, &reg);
	if (!ret && vm_p2p_unregister(pfd, reg.handle))
		ret = 2;
	close(fd);
	return ret;
}

/* 0 where @ret is -EACCES; else an exit status that says what it was (@base + errno). */
static int eacces_or(int ret, int base)
{
	return ret == -EACCES ? 0 : ret > 0 ? ret : base - ret;
}

/* A root-owned world-readable file: nobody may read it, not lock its writers out. */
static int nobody_rootfile(void)
{
	return eacces_or(register_once("b1-pub"), 30);
}

/*
 * Root's file, but nobody may write it: registering locks out no writer who could not
 * have written it anyway. (p2pio takes the layout lease on the caller's behalf: the
 * kernel would refuse a lease to a non-owner.)
 */
static int nobody_writable(void)
{
	int ret = register_once("a1-wr");

	return ret < 0 ? 40 - ret : ret;
}

/*
 * The same file made append-only (chattr +a) by root: nobody's write permission is now
 * only the right to append, which does not extend to locking root's appends out.
 */
static int nobody_appendonly(void)
{
	return eacces_or(register_once("a1-wr"), 50);
}

/* Sets or clears @path's append-only flag (FS_IOC_SETFLAGS, as chattr does): 0 or -errno. */
static int set_append_only(const char *path, bool on)
{
	int fd = open(path, O_RDONLY), flags, ret = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags))
		ret = -errno;
	flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
	if (!ret && ioctl(fd, FS_IOC_SETFLAGS, &flags))
		ret = -errno;
	close(fd);
	return ret;
}

/* Not in the device's group: no /dev/p2pio at all. */
static int nobody_nogroup(void)
{
	int fd;

	if (!vm_drop_privileges_nogroup())
		return 1;
	fd = open("/dev/p2pio", O_RDWR);
	return fd < 0 && errno == EACCES ? 0 : 2;
}

/* What an unprivileged user may do: read a file they own into their GPU memory. */
static int nobody_reads(void)
{
	struct p2pio_register_file reg;
	struct vm_target t;
	int fd, ret, mynvd = vm_nvd_open();

	fd = open(vm_file_path("b1-wr"), O_RDONLY);
	if (fd < 0 || mynvd < 0)
		return 1;
	if (vm_p2p_register(pfd, fd, &reg))
		return 2;
	ret = vm_target_new(pfd, mynvd, P2PIO_PROVIDER_NVIDIA, 65536, 0, 0, 0, &t);
	if (ret)
		return 3;
	vm_mem_poison(&t.mem, 0, 65536, POISON);
	if (vm_host_sync())
		return 4;
	if (vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, 65536, 0))
		return 5;
	vm_mem_expect_file(&t.mem, 0, 65536, "b1-wr", 0);
	if (vm_host_sync())
		return 6;
	return vm_target_free(pfd, &t) ? 7 : 0;
}

static struct vm_mem parent_gpu;

static int nobody_foreign_gpu(void)
{
	struct p2pio_pin pin;
	int ret = vm_p2p_pin_gpu(pfd, &parent_gpu, 0, &pin);

	return ret == -EINVAL ? 0 : 20 + (ret < 0 ? -ret : 0);
}

/* In a child: drop to nobody outside the p2pio group, then run @fn. */
static int as_outsider(int (*fn)(void))
{
	pid_t pid = fork();
	int st;

	if (pid == 0)
		_exit(fn());
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void unprivileged(void)
{
	struct stat st = { 0 };

	tap_ok(!stat("/dev/p2pio", &st) && (st.st_mode & 0777) == 0660 &&
	       st.st_gid == VM_P2PIO_GID, "/dev/p2pio is 0660, group %d (mode %o, gid %d)",
	       VM_P2PIO_GID, st.st_mode & 0777, (int)st.st_gid);
	tap_is_int(as_outsider(nobody_nogroup), 0,
		   "nobody outside the device's group cannot open /dev/p2pio: EACCES");
	tap_is_int(as_nobody(nobody_secret), 0,
		   "nobody cannot register a root-only file, not even through O_PATH");
	tap_is_int(as_nobody(nobody_rootfile), 0,
		   "nobody cannot register a root-owned world-readable file: EACCES");
	tap_is_int(as_nobody(nobody_writable), 0,
		   "nobody may register a root-owned file they may write");
	if (tap_is_int(set_append_only(vm_file_path("a1-wr"), true), 0,
		       "root makes that file append-only")) {
		tap_is_int(as_nobody(nobody_appendonly), 0,
			   "nobody cannot register it append-only, though they may append: EACCES");
		tap_is_int(set_append_only(vm_file_path("a1-wr"), false), 0,
			   "root clears the flag again");
	}
	tap_is_int(as_nobody(nobody_pcibar), 0, "nobody cannot pin a PCI BAR: EPERM");
	tap_is_int(as_nobody(nobody_stats), 0,
		   "nobody cannot read the module's counters of every user (EPERM), only their fd's");
	debugfs_stats_mode();
	tap_is_int(as_nobody(nobody_reads), 0,
		   "nobody can read a file they own into their own GPU memory");
	vm_gpu_alloc(nvd, &parent_gpu, 65536, 0, 0);
	tap_is_int(as_nobody(nobody_foreign_gpu), 0,
		   "nobody cannot pin GPU memory of another process: EINVAL");
	vm_gpu_free(&parent_gpu);
}

static int write_param(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY), ok;

	ok = fd >= 0 && write(fd, v, strlen(v)) == (ssize_t)strlen(v);
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

#define PARAM(name) "/sys/module/p2pio/parameters/" name

static void pin_limit(void)
{
	struct vm_mem g;
	struct p2pio_pin p[3], q;
	int pfd2 = vm_p2p_open(), ret;

	ret = vm_gpu_alloc(nvd, &g, VM_MIB, 0, 0);
	if (!tap_ok(!ret && pfd2 >= 0, "1 MiB of GPU memory and a second /dev/p2pio fd")) {
		if (pfd2 >= 0)
			close(pfd2);
		return;
	}
	tap_ok(!write_param(PARAM("max_user_pins"), "2"), "max_user_pins set to 2");
	tap_is_int(vm_p2p_pin_gpu(pfd, &g, 0, &p[0]), 0, "first pin");
	tap_is_int(vm_p2p_pin_gpu(pfd, &g, 0, &p[1]), 0, "the same memory pinned again");
	tap_is_int(vm_p2p_pin_gpu(pfd, &g, 0, &p[2]), -EDQUOT, "a third pin: EDQUOT");
	tap_is_int(vm_p2p_pin_gpu(pfd2, &g, 0, &q), -EDQUOT,
		   "nor on another fd of the same user: EDQUOT");
	tap_is_int(vm_p2p_unpin(pfd, p[1].handle), 0, "one unpinned");
	tap_is_int(vm_p2p_pin_gpu(pfd2, &g, 0, &q), 0, "then the other fd may pin");
	close(pfd2);	/* gives its pin back */
	tap_is_int(vm_p2p_pin_gpu(pfd, &g, 0, &p[1]), 0, "and its close gave the pin back");
	vm_p2p_unpin(pfd, p[1].handle);
	vm_p2p_unpin(pfd, p[0].handle);
	write_param(PARAM("max_user_pins"), "4096");
	vm_gpu_free(&g);
}

/* Per-user limits, a registration undone when its result cannot be copied out. */
static void limits(void)
{
	const char *names[] = { "a1-1m", "a1-small", "a2-small" };
	struct p2pio_register_file reg[3], *ro;
	struct p2pio_stats s0, s1;
	struct vm_target t;
	uint32_t first;
	int fd[3], i, ret, w;

	for (i = 0; i < 3; i++)
		fd[i] = open(vm_file_path(names[i]), O_RDONLY);
	tap_ok(!write_param(PARAM("max_user_files"), "2"), "max_user_files set to 2");
	tap_is_int(vm_p2p_register(pfd, fd[0], &reg[0]), 0, "first file registered");
	tap_is_int(vm_p2p_register(pfd, fd[1], &reg[1]), 0, "second file registered");
	tap_is_int(vm_p2p_register(pfd, fd[2], &reg[2]), -EDQUOT, "a third one: EDQUOT");
	vm_p2p_unregister(pfd, reg[1].handle);
	write_param(PARAM("max_user_files"), "4096");

	tap_ok(!write_param(PARAM("max_user_extent_kib"), "1"), "max_user_extent_kib set to 1");
	tap_is_int(vm_p2p_register(pfd, fd[1], &reg[1]), -EDQUOT,
		   "a file whose extent list needs more: EDQUOT");
	write_param(PARAM("max_user_extent_kib"), "262144");

	/* one command at a time for this user: a read of 64 commands still completes */
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, VM_MIB, 0, 0, 0, &t);
	tap_is_int(ret, 0, "1 MiB of GPU memory pinned");
	w = open(vm_file_path("b1-1m"), O_RDONLY);
	ret = vm_p2p_register(pfd, w, &reg[1]);
	tap_ok(!write_param(PARAM("max_user_cmds"), "1"), "max_user_cmds set to 1");
	vm_mem_poison(&t.mem, 0, VM_MIB, POISON);
	vm_host_sync();
	tap_is_int(ret ? ret : vm_p2p_read(pfd, reg[1].handle, t.pin.handle, 0, VM_MIB, 0), 0,
		   "a 1 MiB read on the 16 KiB-MDTS controller, one command at a time");
	vm_mem_expect_file(&t.mem, 0, VM_MIB, "b1-1m", 0);
	tap_ok(!vm_host_sync(), "its bytes are right");
	write_param(PARAM("max_user_cmds"), "1024");
	vm_p2p_unregister(pfd, reg[1].handle);
	close(w);
	vm_target_free(pfd, &t);

	/*
	 * Pins per user, over all their fds: the driver's page tables are no memory the
	 * user's cgroup is charged for. The same GPU memory pinned again counts again.
	 */
	pin_limit();

	/* handles are not handed out again at once */
	first = reg[0].handle;
	vm_p2p_unregister(pfd, first);
	tap_is_int(vm_p2p_register(pfd, fd[0], &reg[0]), 0, "registered again");
	tap_ok(reg[0].handle != first, "with a new handle (%u, was %u)", reg[0].handle, first);
	vm_p2p_unregister(pfd, reg[0].handle);

	/* the result cannot be copied out: the registration is undone, writers may open */
	ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED) {
		tap_skip(2, "mmap");
	} else {
		memset(ro, 0, sizeof(*ro));
		w = open(vm_file_path("b2-wr"), O_RDONLY);
		ro->fd = w;
		mprotect(ro, 4096, PROT_READ);
		vm_p2p_stats(pfd, P2PIO_STATS_FD, &s0);
		tap_ok(ioctl(pfd, P2PIO_IOC_REGISTER_FILE, ro) && errno == EFAULT,
		       "register with a read-only argument: EFAULT");
		vm_p2p_stats(pfd, P2PIO_STATS_FD, &s1);
		close(w);
		w = open(vm_file_path("b2-wr"), O_WRONLY);
		tap_ok(w >= 0 && s1.live_files == s0.live_files,
		       "and undone: no file left registered, writers may open it");
		if (w >= 0)
			close(w);
		munmap(ro, 4096);
	}
	for (i = 0; i < 3; i++)
		close(fd[i]);
}

/* A driver whose page tables have an unknown major version: no pin, nothing left held. */
static void page_table_version(void)
{
	const char *param = "/sys/module/nvdouble/parameters/pt_major";
	struct nvdouble_info before, after;
	struct vm_target t;
	char old[16] = "2";
	int fd = open(param, O_RDONLY), ret;

	if (fd >= 0) {
		ssize_t n = read(fd, old, sizeof(old) - 1);

		old[n > 0 ? n : 1] = 0;
		close(fd);
	}
	vm_nvd_info(&before);
	if (!tap_ok(!write_param(param, "3"), "the double now reports page-table version 3.0")) {
		tap_skip(2, "cannot set the version");
		return;
	}
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, 65536, 0, 0, 0, &t);
	write_param(param, old);
	tap_is_int(ret, -EPROTO, "a pin with an unknown page-table major: EPROTO");
	vm_nvd_info(&after);
	tap_ok(after.pins_persistent == before.pins_persistent &&
	       after.pins_callback == before.pins_callback && after.dma_mappings == before.dma_mappings,
	       "the refused page table was put back");
	if (!ret)
		vm_target_free(pfd, &t);
}

static void requests(void)
{
	struct p2pio_register_file reg, reg4k;
	struct p2pio_read r[16];
	const char *what[16];
	int want[16];
	struct p2pio_version v;
	struct vm_target t;
	uint32_t n = 0, k, i;
	int fd = open(vm_file_path("a1-1m"), O_RDONLY);
	int fd4k = open(vm_file_path("a2-small"), O_RDONLY);
	uint64_t fsize;
	int ret;

	vm_p2p_version(pfd, &v);
	tap_is_int(vm_p2p_register(pfd, fd, &reg), 0, "register a1-1m");
	tap_is_int(vm_p2p_register(pfd, fd4k, &reg4k), 0, "register a2-small (4 KiB LBAs)");
	fsize = reg.size;
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, 256 * VM_KIB, 0, 0, 0, &t);
	tap_is_int(ret, 0, "256 KiB of GPU memory pinned");
	vm_mem_poison(&t.mem, 0, t.mem.size, POISON);
	tap_ok(!vm_host_sync(), "poisoned");

#define BADREAD(fo, ln, mo, fl, res, mh, fh, w, d)                                  \
	do {                                                                                 \
		r[n] = (struct p2pio_read){ .file = (fh), .mem = (mh), .file_offset = (fo),   \
					    .length = (ln), .mem_offset = (mo), .flags = (fl), \
					    .reserved = (res), .user_tag = n };               \
		want[n] = (w);                                                                \
		what[n] = (d);                                                                \
		n++;                                                                          \
	} while (0)
	BADREAD(100, 512, 0, 0, 0, t.pin.handle, reg.handle, -EINVAL, "file offset not LBA aligned");
	BADREAD(512, 4096, 0, 0, 0, t.pin.handle, reg4k.handle, -EINVAL, "4 KiB LBA file, 512-byte offset");
	BADREAD(0, 1000, 0, 0, 0, t.pin.handle, reg.handle, -EINVAL, "length not LBA aligned");
	BADREAD(0, 0, 0, 0, 0, t.pin.handle, reg.handle, -EINVAL, "length 0");
	BADREAD(0, 512, 2, 0, 0, t.pin.handle, reg.handle, -EINVAL, "destination not dword aligned");
	BADREAD(fsize + 4096, 512, 0, 0, 0, t.pin.handle, reg.handle, -ERANGE, "beyond the file");
	BADREAD(fsize - 512, 1024, 0, 0, 0, t.pin.handle, reg.handle, -ERANGE, "across the file's end");
	BADREAD(0, 4096, 256 * 1024 - 2048, 0, 0, t.pin.handle, reg.handle, -ERANGE, "past the pin's end");
	BADREAD(0, 512, ~0ull - 255, 0, 0, t.pin.handle, reg.handle, -ERANGE, "destination offset overflowing");
	BADREAD(~0ull - 511, 512, 0, 0, 0, t.pin.handle, reg.handle, -ERANGE, "file offset overflowing");
	BADREAD(0, 512, 0, 1, 0, t.pin.handle, reg.handle, -EINVAL, "flags set");
	BADREAD(0, 512, 0, 0, 7, t.pin.handle, reg.handle, -EINVAL, "reserved set");
	BADREAD(0, 512, 0, 0, 0, t.pin.handle, 0, -EBADF, "file handle 0");
	BADREAD(0, 512, 0, 0, 0, t.pin.handle, 0x7fffffff, -EBADF, "unknown file handle");
	BADREAD(0, 512, 0, 0, 0, reg.handle + 1000, reg.handle, -EBADF, "unknown memory handle");
	BADREAD(0, v.max_read_len + 512, 0, 0, 0, t.pin.handle, reg.handle, -EINVAL, "longer than max_read_len");
	ret = vm_p2p_submit(pfd, r, n, &k);
	tap_ok(!ret && k == n, "a batch of %u bad reads is accepted (each fails alone)", n);
	ret = vm_p2p_reap(pfd, NULL, 0, 0, 0, NULL);
	tap_is_int(ret, -EINVAL, "reap with max 0: EINVAL");
	{
		struct p2pio_completion got[16];
		uint32_t have = 0, g;

		while (have < n && !vm_p2p_reap(pfd, got + have, n - have, n - have, 5000000000ll, &g) && g)
			have += g;
		tap_is_int(have, n, "every bad read completed");
		for (i = 0; i < have; i++) {
			uint32_t j = got[i].user_tag;

			if (j >= n)
				continue;
			tap_ok(got[i].status == want[j] && got[i].bytes == 0, "%s: %s (got %d)",
			       what[j], strerror(-want[j]), got[i].status);
		}
	}
	vm_mem_expect_fill(&t.mem, 0, t.mem.size, POISON);
	if (!tap_ok(!vm_host_sync(), "no bad read wrote anything"))
		tap_diag("%s", vm_host_why());

	/* batches */
	tap_is_int(vm_p2p_submit(pfd, r, 0, NULL), -EINVAL, "an empty batch: EINVAL");
	tap_is_int(vm_p2p_submit(pfd, r, v.max_batch + 1, NULL), -EINVAL, "a batch over max_batch: EINVAL");
	{
		struct p2pio_submit s = { .reads = 16, .count = 1 };

		tap_ok(ioctl(pfd, P2PIO_IOC_SUBMIT, &s) && errno == EFAULT, "reads at a bad address: EFAULT");
		s.reads = (uintptr_t)r;
		s.pad = 1;
		tap_ok(ioctl(pfd, P2PIO_IOC_SUBMIT, &s) && errno == EINVAL, "submit pad set: EINVAL");
	}
	tap_ok(ioctl(pfd, _IO(P2PIO_IOC_MAGIC, 0x7f)) && errno == ENOTTY, "unknown ioctl: ENOTTY");
	tap_is_int(vm_p2p_unregister(pfd, 0x12345), -EBADF, "unregister an unknown handle: EBADF");
	tap_is_int(vm_p2p_unpin(pfd, 0x12345), -EBADF, "unpin an unknown handle: EBADF");

	/* pins */
	{
		struct p2pio_pin p;
		struct vm_mem m = t.mem;

		memset(&p, 0, sizeof(p));
		p.provider = 9;
		p.addr = t.mem.va;
		p.length = 65536;
		tap_ok(ioctl(pfd, P2PIO_IOC_PIN, &p) && errno == EINVAL, "unknown provider: EINVAL");
		p.provider = P2PIO_PROVIDER_NVIDIA;
		p.bar = 2;
		tap_ok(ioctl(pfd, P2PIO_IOC_PIN, &p) && errno == EINVAL, "nvidia pin with a BAR set: EINVAL");
		p.bar = 0;
		p.length = 0;
		tap_ok(ioctl(pfd, P2PIO_IOC_PIN, &p) && errno == EINVAL, "length 0: EINVAL");
		p.addr = NVDOUBLE_VA_BASE - 65536 * 4;
		p.length = 65536;
		tap_ok(ioctl(pfd, P2PIO_IOC_PIN, &p) && errno == EINVAL, "not GPU memory: EINVAL");
		m.size = t.mem.size + 65536;
		tap_is_int(vm_p2p_pin_gpu(pfd, &m, 0, &p), -EINVAL, "beyond the allocation: EINVAL");
		vm_bar_range(&m, 0, 1ull << 40);
		tap_is_int(vm_p2p_pin_bar(pfd, &m, &p), -ERANGE, "pcibar beyond the BAR: ERANGE");
		vm_mem_release(&m);
		memset(&p, 0, sizeof(p));
		p.provider = P2PIO_PROVIDER_PCIBAR;
		p.pci_bus = 0xff;
		p.pci_devfn = 0xff;
		p.length = 4096;
		tap_ok(ioctl(pfd, P2PIO_IOC_PIN, &p) && errno == ENODEV, "pcibar of no device: ENODEV");
	}

	/* a pin whose result cannot be copied out is undone; handles are not reused at once */
	{
		struct p2pio_stats s0, s1;
		struct p2pio_pin *ro, p;
		uint32_t first;

		memset(&p, 0, sizeof(p));
		p.provider = P2PIO_PROVIDER_NVIDIA;
		p.addr = t.mem.va;
		p.length = 65536;
		ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (ro == MAP_FAILED) {
			tap_skip(4, "mmap");
		} else {
			*ro = p;
			mprotect(ro, 4096, PROT_READ);
			vm_p2p_stats(pfd, P2PIO_STATS_FD, &s0);
			tap_ok(ioctl(pfd, P2PIO_IOC_PIN, ro) && errno == EFAULT,
			       "pin with a read-only argument: EFAULT");
			vm_p2p_stats(pfd, P2PIO_STATS_FD, &s1);
			tap_ok(s1.live_pins == s0.live_pins,
			       "and undone: no pin left (%llu, was %llu)",
			       (unsigned long long)s1.live_pins, (unsigned long long)s0.live_pins);
			munmap(ro, 4096);
			tap_ok(!ioctl(pfd, P2PIO_IOC_PIN, &p), "pinned");
			first = p.handle;
			vm_p2p_unpin(pfd, first);
			ret = ioctl(pfd, P2PIO_IOC_PIN, &p);
			tap_ok(!ret && p.handle != first,
			       "pinned again with a new handle (%u, was %u)", p.handle, first);
			vm_p2p_unpin(pfd, p.handle);
		}
	}

	tap_is_int(vm_target_free(pfd, &t), 0, "unpin");
	page_table_version();
	tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "unregister");
	vm_p2p_unregister(pfd, reg4k.handle);
	close(fd);
	close(fd4k);
}

int main(void)
{
	tap_plan_lazy();
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	nvd = vm_nvd_open();
	if (nvd < 0)
		tap_bail("no /dev/nvdouble");
	/* the channel is opened as root, before any child drops privileges */
	tap_ok(!vm_host_sync(), "host channel");
	files();
	writers();
	unprivileged();
	limits();
	requests();
	close(nvd);
	close(pfd);
	return tap_exit();
}
