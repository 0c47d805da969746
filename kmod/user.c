// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * user.c - per-user accounting: what all of one local user's /dev/p2pio fds hold
 * together, bounded by module parameters, so that one user cannot take every NVMe
 * command slot or pin kernel memory for extent lists without end.
 *
 * Users are keyed by real uid. A user's entry lives while one of their fds is open;
 * commands, files and extent lists never outlive their fd, so never their entry.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "p2pio.h"

unsigned int p2pio_max_user_cmds = 1024;
module_param_named(max_user_cmds, p2pio_max_user_cmds, uint, 0644);
MODULE_PARM_DESC(max_user_cmds,
		 "NVMe commands one user may have in flight over all their fds (default 1024); submitters wait for a slot");

unsigned int p2pio_max_user_files = 4096;
module_param_named(max_user_files, p2pio_max_user_files, uint, 0644);
MODULE_PARM_DESC(max_user_files,
		 "files one user may have registered over all their fds (default 4096); more: EDQUOT");

/*
 * Each pin makes the driver allocate a page table (and p2pio a DMA map per controller),
 * none of it charged to the user's memory cgroup, and the same GPU range may be pinned
 * again and again: without a bound per user, 1024 pins per fd times the fds a user may
 * open.
 */
unsigned int p2pio_max_user_pins = 4096;
module_param_named(max_user_pins, p2pio_max_user_pins, uint, 0644);
MODULE_PARM_DESC(max_user_pins,
		 "pins one user may hold over all their fds (default 4096); more: EDQUOT");

unsigned long p2pio_max_user_extent_kib = 256 * 1024;
module_param_named(max_user_extent_kib, p2pio_max_user_extent_kib, ulong, 0644);
MODULE_PARM_DESC(max_user_extent_kib,
		 "KiB of kernel memory one user's extent lists may take (default 262144, 256 MiB); more: EDQUOT");

static DEFINE_HASHTABLE(p2pio_users, 6);
static DEFINE_MUTEX(p2pio_users_lock);

/* The calling task's user entry, with a reference for one fd. */
struct p2pio_user *p2pio_user_get(void)
{
	kuid_t uid = current_uid();
	struct p2pio_user *u;

	mutex_lock(&p2pio_users_lock);
	hash_for_each_possible(p2pio_users, u, node, __kuid_val(uid)) {
		if (uid_eq(u->uid, uid)) {
			u->fds++;
			goto out_unlock;
		}
	}
	u = kzalloc(sizeof(*u), GFP_KERNEL);
	if (!u) {
		u = ERR_PTR(-ENOMEM);
		goto out_unlock;
	}
	u->uid = uid;
	u->fds = 1;
	atomic_set(&u->cmds, 0);
	atomic_set(&u->files, 0);
	atomic_set(&u->pins, 0);
	atomic64_set(&u->ext_bytes, 0);
	init_waitqueue_head(&u->cmd_wait);
	hash_add(p2pio_users, &u->node, __kuid_val(uid));
out_unlock:
	mutex_unlock(&p2pio_users_lock);
	return u;
}

void p2pio_user_put(struct p2pio_user *u)
{
	mutex_lock(&p2pio_users_lock);
	if (!--u->fds) {
		WARN_ON_ONCE(atomic_read(&u->cmds) || atomic_read(&u->files) ||
			     atomic_read(&u->pins) || atomic64_read(&u->ext_bytes));
		hash_del(&u->node);
		kfree(u);
	}
	mutex_unlock(&p2pio_users_lock);
}

/*
 * Counts one more of what @count counts for a user (files, pins) unless the user has
 * @limit already: true if counted. The count never passes @limit, not even for a
 * moment, so a racing caller is never refused for a charge that is about to be undone.
 */
bool p2pio_user_take(atomic_t *count, unsigned int limit)
{
	int old = atomic_read(count);

	do {
		if ((unsigned int)old >= limit)
			return false;
	} while (!atomic_try_cmpxchg(count, &old, old + 1));
	return true;
}

/*
 * Waits (killable) until the user has fewer than max_user_cmds commands in flight. The
 * limit is read on every try and compared with >=, not ==: root may lower it while a
 * user has more in flight than the new one, and the user then waits until below it.
 */
int p2pio_user_cmd_slot(struct p2pio_user *u)
{
	if (wait_event_killable(u->cmd_wait,
				p2pio_user_take(&u->cmds, max(READ_ONCE(p2pio_max_user_cmds), 1U))))
		return -EINTR;
	return 0;
}

/* A command of @u ended (any context). */
void p2pio_user_cmd_done(struct p2pio_user *u)
{
	atomic_dec(&u->cmds);
	wake_up(&u->cmd_wait);
}

int p2pio_user_charge_ext(struct p2pio_user *u, u64 bytes)
{
	u64 limit = (u64)READ_ONCE(p2pio_max_user_extent_kib) << 10;

	if (atomic64_add_return(bytes, &u->ext_bytes) > limit) {
		atomic64_sub(bytes, &u->ext_bytes);
		return -EDQUOT;
	}
	return 0;
}

void p2pio_user_uncharge_ext(struct p2pio_user *u, u64 bytes)
{
	atomic64_sub(bytes, &u->ext_bytes);
}
