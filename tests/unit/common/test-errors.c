// SPDX-License-Identifier: MIT
/* The library's common pieces: version string and error messages. */
#include <errno.h>
#include <string.h>

#include "p2pio.h"
#include "tap.h"

int main(void)
{
	tap_plan(4);
	tap_ok(strcmp(p2pio_version(), "0.1.0") == 0, "version is %s", p2pio_version());
	tap_ok(strcmp(p2pio_strerror(-ENOENT), strerror(ENOENT)) == 0, "-ENOENT is named");
	tap_ok(strcmp(p2pio_strerror(EINVAL), strerror(EINVAL)) == 0, "a positive errno works too");
	tap_ok(p2pio_strerror(-99999) != NULL, "an unknown errno still gives a string");
	return tap_exit();
}
