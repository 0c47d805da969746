// SPDX-License-Identifier: GPL-2.0
/*
 * vmcheck.ko - makes the kernel report one defect on purpose, so that the VM suite can
 * prove, on each kernel it boots, that the memory checkers it turns on catch it and that
 * the host's log scanner fails such a log (tests/vm/run.sh, the "selftest" boot).
 *
 *   insmod vmcheck.ko fault=slub    one byte written past a kmalloc object, then freed:
 *                                   SLUB's red zone check (slub_debug=FZPU) reports it
 *   insmod vmcheck.ko fault=kfence  one byte written on each side of an object KFENCE
 *                                   guards: KFENCE reports it (kernels built with KFENCE)
 *   insmod vmcheck.ko fault=warn    WARN()
 *
 * Loading succeeds whatever happened (busybox's insmod retries a module whose init
 * fails, which would make the defect twice); the kernel log says what was done:
 * "vmcheck: fault=kfence: -95" (EOPNOTSUPP) when the kernel lacks the checker, -110
 * (ETIMEDOUT) when KFENCE sampled nothing in time. The selftest boot powers off after.
 */
#include <linux/delay.h>
#include <linux/kfence.h>
#include <linux/module.h>
#include <linux/slab.h>

static char *fault = "";
module_param(fault, charp, 0444);
MODULE_PARM_DESC(fault, "slub, kfence or warn");

#define OBJ 32

/* A kmalloc object SLUB (not KFENCE) serves, for the red zone check. */
static int vmcheck_slub(void)
{
	char *p;
	int tries;

	for (tries = 0; tries < 100; tries++) {
		p = kmalloc(OBJ, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		if (!is_kfence_address(p))
			break;
		kfree(p);
		p = NULL;
	}
	if (!p)
		return -EAGAIN;
	/* launder the pointer: the compiler must not see the overflow */
	OPTIMIZER_HIDE_VAR(p);
	p[OBJ] = 0x42;
	kfree(p);
	return 0;
}

/* Waits up to 10 s for an allocation KFENCE samples, then writes on both sides of it:
 * one side is a guard page (out-of-bounds report), the other its canary (corruption
 * report at the free), depending on where KFENCE placed the object in its page. */
static int vmcheck_kfence(void)
{
	char *p = NULL;
	int i;

	if (!IS_ENABLED(CONFIG_KFENCE))
		return -EOPNOTSUPP;
	for (i = 0; i < 10000 && !p; i++) {
		p = kmalloc(OBJ, GFP_KERNEL);
		if (p && !is_kfence_address(p)) {
			kfree(p);
			p = NULL;
			usleep_range(500, 1000);
		}
	}
	if (!p)
		return -ETIMEDOUT;
	OPTIMIZER_HIDE_VAR(p);
	p[-1] = 0x42;
	p[OBJ] = 0x42;
	kfree(p);
	return 0;
}

static int __init vmcheck_init(void)
{
	int ret = -EINVAL;

	if (!strcmp(fault, "slub"))
		ret = vmcheck_slub();
	else if (!strcmp(fault, "kfence"))
		ret = vmcheck_kfence();
	else if (!strcmp(fault, "warn"))
		ret = WARN(1, "vmcheck: a warning on purpose\n") ? 0 : -EINVAL;
	pr_info("vmcheck: fault=%s: %d\n", fault, ret);
	return 0;
}

/* Unloadable, so that the next fault can load it again. */
static void __exit vmcheck_exit(void)
{
}

module_init(vmcheck_init);
module_exit(vmcheck_exit);
MODULE_DESCRIPTION("p2pio VM tests: defects on purpose, for the memory checkers");
MODULE_LICENSE("GPL");
