// SPDX-License-Identifier: MIT
/*
 * final-target-gone - the device whose BAR a pcibar pin targets leaves the machine (PCI
 * remove of the ivshmem "GPU"): p2pio revokes the pin before the device goes, so a read
 * into it afterwards fails with ENODEV instead of writing to where the BAR was; unpin
 * and unregister work and nothing is left. Runs last: the device stays removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define LEN (256 * VM_KIB)
#define SIZE (4 * VM_MIB)

int main(void)
{
	struct p2pio_register_file reg;
	struct nvdouble_info ni;
	struct p2pio_pin pin;
	struct vm_mem m;
	uint32_t dom, bus, devfn;
	char path[128];
	const char *file = vm_file_path("a1-big");
	int pfd, fd, rfd, ret;

	tap_plan_lazy();
	if (!file || vm_ivshmem_bdf(&dom, &bus, &devfn) || vm_nvd_info(&ni) || ni.bar_size < SIZE)
		tap_skip_all("no ivshmem device (removed already?) or no test file");
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	fd = open(file, O_RDONLY);
	tap_is_int(vm_p2p_register(pfd, fd, &reg), 0, "register %s", file);
	/* The top of the BAR: the double allocates from the bottom, nothing is allocated now */
	vm_bar_range(&m, ni.bar_size - SIZE, SIZE);
	ret = vm_p2p_pin_bar(pfd, &m, &pin);
	tap_is_int(ret, 0, "pcibar pin of the last 4 MiB of the ivshmem BAR");
	if (ret)
		return tap_exit();
	tap_is_int(vm_p2p_read(pfd, reg.handle, pin.handle, 0, LEN, 0), 0, "a read into it");
	vm_mem_expect_file(&m, 0, LEN, "a1-big", 0);
	tap_ok(!vm_host_sync(), "the host finds the file's bytes in the BAR");

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%04x:%02x:%02x.%x/remove", dom, bus,
		 devfn >> 3, devfn & 7);
	rfd = open(path, O_WRONLY);
	ret = rfd >= 0 && write(rfd, "1", 1) == 1 ? 0 : -errno;
	if (rfd >= 0)
		close(rfd);
	tap_is_int(ret, 0, "the ivshmem device removed");
	ret = vm_p2p_read(pfd, reg.handle, pin.handle, LEN, LEN, LEN);
	tap_is_int(ret, -ENODEV, "a read into the pin of the removed device fails: %s",
		   strerror(-ret));
	tap_is_int(vm_p2p_unpin(pfd, pin.handle), 0, "unpin");
	tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "unregister");
	close(fd);
	vm_mem_release(&m);
	tap_ok(vm_nothing_left(pfd), "nothing left: commands, reads, files, pins, PRP pages");
	close(pfd);
	return tap_exit();
}
