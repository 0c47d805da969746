// SPDX-License-Identifier: MIT
/*
 * final-hotremove - an NVMe controller disappears (PCI remove) while p2pio has reads in
 * flight on it: every read completes (with success or an errno), later reads fail
 * instead of hanging, and closing releases everything. Controller D (serial p2pD) is
 * there only for this; it runs in the last phase of a boot (the controller stays removed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define NREADS 512
#define LEN (64 * VM_KIB)

int main(void)
{
	static struct p2pio_read rd[NREADS];
	static struct p2pio_completion c[NREADS];
	struct p2pio_register_file reg;
	struct vm_target t;
	char bdf[64], path[128];
	uint32_t accepted = 0, done = 0, k, got, ok = 0, failed = 0, i;
	int pfd, nvd, fd, st, ret;
	const char *file = vm_file_path("hr-big");
	pid_t pid;

	tap_plan_lazy();
	if (!file || vm_nvme_ctrl_bdf("p2pD", bdf, sizeof(bdf)))
		tap_skip_all("controller p2pD is not there (removed by an earlier phase)");
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	nvd = vm_nvd_open();
	fd = open(file, O_RDONLY);
	tap_is_int(vm_p2p_register(pfd, fd, &reg), 0, "register %s (controller %s)", file, bdf);
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, 16 * VM_MIB, 0, 0, 0, &t);
	tap_is_int(ret, 0, "16 MiB of GPU memory pinned");
	if (ret)
		return tap_exit();
	for (i = 0; i < NREADS; i++)
		rd[i] = (struct p2pio_read){ .file = reg.handle, .mem = t.pin.handle,
					     .file_offset = i * LEN % (16 * VM_MIB), .length = LEN,
					     .mem_offset = i * LEN % (16 * VM_MIB), .user_tag = i };

	/* the removal runs in a child: it may block until the driver has let go */
	pid = fork();
	if (pid == 0) {
		struct p2pio_stats cs = { 0 };
		int rfd, sp = vm_p2p_open(), n;

		/* as soon as commands are in flight */
		for (n = 0; n < 20000 && !cs.inflight_cmds; n++)
			vm_p2p_stats(sp, P2PIO_STATS_GLOBAL, &cs);
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", bdf);
		rfd = open(path, O_WRONLY);
		_exit(rfd >= 0 && write(rfd, "1", 1) == 1 ? 0 : 1);
	}
	while (accepted < NREADS) {
		ret = vm_p2p_submit(pfd, rd + accepted, NREADS - accepted, &k);
		if (ret && ret != -EAGAIN)
			break;
		accepted += k;
		if (!k) {
			if (vm_p2p_reap(pfd, c + done, accepted - done, 1, 30000000000ll, &got) || !got)
				break;
			done += got;
		}
	}
	while (done < accepted &&
	       !vm_p2p_reap(pfd, c + done, accepted - done, 1, 30000000000ll, &got) && got)
		done += got;
	tap_ok(accepted > 0 && done == accepted, "all %u accepted reads completed (none hangs)",
	       accepted);
	for (i = 0; i < done; i++) {
		if (!c[i].status)
			ok++;
		else if (c[i].status < 0 && c[i].bytes == 0)
			failed++;
	}
	tap_ok(ok + failed == done, "%u succeeded, %u failed with an errno", ok, failed);
	tap_ok(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st),
	       "the controller was removed");
	ret = vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0);
	tap_ok(ret < 0 && ret != -ETIMEDOUT, "a read after the removal fails at once: %s",
	       strerror(-ret));
	tap_is_int(vm_target_free(pfd, &t), 0, "unpin");
	tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "unregister");
	close(fd);
	close(nvd);
	tap_ok(vm_nothing_left(pfd), "nothing left: commands, reads, files, pins, PRP pages");
	close(pfd);
	return tap_exit();
}
