// SPDX-License-Identifier: MIT
/*
 * final-rebind - nvme-pci lets go of a controller (unbind, as before a rebind to another
 * driver such as vfio-pci) while p2pio has a pin mapped for it: p2pio undoes that DMA
 * mapping at once (the double's count of live mappings drops), reads of the file
 * registered before fail with an errno instead of using the old binding, unpinning and
 * unregistering work; after a rebind to nvme the namespace is a new block device, and a
 * file registered on it reads into the same pin, every byte checked by the host.
 * Controller B (serial p2pB, namespace 2, ext4 on partition 1), in the last phase.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "vmlib.h"

#define LEN (256 * VM_KIB)
#define SERIAL "p2pB"
#define NSID 2

int main(void)
{
	struct nvdouble_info before, ni;
	struct p2pio_register_file reg;
	struct vm_target t;
	char bdf[64], ns[64], dev[96], path[160];
	const char *file = vm_file_path("b2-big");
	int pfd, nvd, fd, ret, i;

	tap_plan_lazy();
	if (!file || vm_nvme_find(SERIAL, NSID, bdf, sizeof(bdf), NULL, 0))
		tap_skip_all("controller p2pB or b2-big is not there");
	pfd = vm_p2p_open();
	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	nvd = vm_nvd_open();
	fd = open(file, O_RDONLY);
	tap_is_int(vm_p2p_register(pfd, fd, &reg), 0, "register %s (controller %s)", file, bdf);
	ret = vm_target_new(pfd, nvd, P2PIO_PROVIDER_NVIDIA, 4 * VM_MIB, 0, 0, 0, &t);
	tap_is_int(ret, 0, "4 MiB of GPU memory pinned");
	if (ret)
		return tap_exit();
	tap_is_int(vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0), 0,
		   "a read maps the pin for the controller");
	vm_nvd_info(&before);

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	tap_is_int(vm_write_str(path, bdf), 0, "nvme-pci unbound from %s", bdf);
	vm_nvd_info(&ni);
	tap_ok(ni.dma_mappings + 1 == before.dma_mappings,
	       "the pin's DMA mapping for the unbound controller is undone at once (%u -> %u)",
	       before.dma_mappings, ni.dma_mappings);
	ret = vm_p2p_read(pfd, reg.handle, t.pin.handle, 0, LEN, 0);
	tap_ok(ret < 0 && ret != -ETIMEDOUT, "a read of the file registered before fails: %s",
	       strerror(-ret));
	tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "unregister it");
	close(fd);

	tap_is_int(vm_write_str("/sys/bus/pci/drivers/nvme/bind", bdf), 0, "nvme-pci bound again");
	ret = -ENODEV;
	for (i = 0; i < 100 && ret; i++) {
		ret = vm_nvme_find(SERIAL, NSID, NULL, 0, ns, sizeof(ns));
		snprintf(dev, sizeof(dev), "/dev/%sp1", ns);
		if (!ret && access(dev, F_OK))
			ret = -ENOENT;
		if (ret)
			usleep(100000);
	}
	tap_is_int(ret, 0, "namespace %d is back as %s", NSID, dev);
	mkdir("/tmp/rebound", 0755);
	/* ro,noload: the old mount of the same file system still exists (dead) */
	ret = mount(dev, "/tmp/rebound", "ext4", MS_RDONLY, "noload") ? -errno : 0;
	tap_is_int(ret, 0, "its file system mounted again");
	fd = open("/tmp/rebound/b2-big", O_RDONLY);
	ret = fd < 0 ? -errno : vm_p2p_register(pfd, fd, &reg);
	tap_is_int(ret, 0, "the file registered on the new binding");
	if (!ret) {
		tap_is_int(vm_p2p_read(pfd, reg.handle, t.pin.handle, LEN, LEN, LEN), 0,
			   "a read into the same pin");
		vm_mem_expect_file(&t.mem, LEN, LEN, "b2-big", LEN);
		tap_is_int(vm_host_sync(), 0, "the host finds the file's bytes in the GPU memory");
		tap_is_int(vm_p2p_unregister(pfd, reg.handle), 0, "unregister");
	}
	if (fd >= 0)
		close(fd);
	tap_is_int(vm_target_free(pfd, &t), 0, "unpin");
	close(nvd);
	tap_ok(vm_nothing_left(pfd), "nothing left: commands, reads, files, pins, PRP pages");
	vm_nvd_info(&ni);
	tap_ok(!ni.dma_mappings && !ni.pins_persistent && !ni.pins_callback,
	       "the driver holds no pin or mapping");
	close(pfd);
	return tap_exit();
}
