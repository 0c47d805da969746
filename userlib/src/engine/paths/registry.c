// SPDX-License-Identifier: MIT
/*
 * registry.c - the I/O paths the engine knows, in the order AUTO tries them: the fastest
 * first, the one that works everywhere last. The only file that names the paths' tables.
 */
#include "engine/path.h"

const struct p2pio_path_ops *const p2pio_paths[] = {
	&p2pio_p2p_ops,
	&p2pio_bounce_ops,
	&p2pio_posix_ops,
	NULL,
};

const struct p2pio_path_ops *p2pio_path_ops(enum p2pio_path path)
{
	unsigned int i;

	for (i = 0; p2pio_paths[i]; i++)
		if (p2pio_paths[i]->id == path)
			return p2pio_paths[i];
	return NULL;
}
