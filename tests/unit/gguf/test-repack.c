// SPDX-License-Identifier: MIT
/*
 * Repack: the copy has every tensor aligned to N, the same bytes, the same metadata in the
 * same order (general.alignment updated), the same tensor order; the input is never
 * touched; output == input is refused under any name; a failure leaves nothing behind; an
 * input that someone else truncates while it is copied or verified gives an error, not SIGBUS.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p2pio.h"
#include "gguf/repack.h"
#include "tap.h"

static char dir[] = "/tmp/p2pio-test-repack-XXXXXX";
static char in[256], out[256];

static int count_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* The whole file, for before/after comparisons. */
static uint8_t *slurp(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static uint64_t seed = 1234;

/* An input with varied metadata, general.alignment kept at 32, odd-sized tensors. */
static int make_input(uint32_t alignment)
{
	const uint32_t u32s[] = { 1, 2, 3 };
	const char *strs[] = { "a", "b" };
	struct p2pio_gguf_writer *w = NULL;
	struct p2pio_gguf_new_tensor t;
	static const uint32_t types[] = { P2PIO_GGML_TYPE_F32, P2PIO_GGML_TYPE_Q4_K,
		P2PIO_GGML_TYPE_Q6_K, P2PIO_GGML_TYPE_Q8_0, P2PIO_GGML_TYPE_F16 };
	static const char *names[] = { "token_embd.weight", "blk.0.attn_q.weight",
		"blk.0.ffn_down_exps.weight", "blk.1.attn_k.weight", "output.weight" };
	int i, ret;

	ret = p2pio_gguf_writer_create(&w, in, alignment, NULL);
	ret = ret ?: p2pio_gguf_writer_add_str(w, "general.architecture", "llama");
	ret = ret ?: p2pio_gguf_writer_keep_alignment_key(w);
	ret = ret ?: p2pio_gguf_writer_add_array(w, "x.u32s", P2PIO_GGUF_TYPE_UINT32, u32s, 3);
	ret = ret ?: p2pio_gguf_writer_begin_array(w, "x.nest", P2PIO_GGUF_TYPE_ARRAY, 1);
	ret = ret ?: p2pio_gguf_writer_add_array(w, NULL, P2PIO_GGUF_TYPE_STRING, strs, 2);
	ret = ret ?: p2pio_gguf_writer_end_array(w);
	ret = ret ?: p2pio_gguf_writer_add_f32(w, "x.f32", -1.25f);
	ret = ret ?: p2pio_gguf_writer_add_bool(w, "x.bool", false);
	ret = ret ?: p2pio_gguf_writer_add_u64(w, P2PIO_PATTERN_SEED_KEY, seed);
	for (i = 0; !ret && i < 5; i++) {
		uint32_t be;

		p2pio_ggml_type_block(types[i], &be, NULL, NULL);
		memset(&t, 0, sizeof(t));
		t.name = names[i];
		t.type = types[i];
		t.n_dims = i == 2 ? 3 : 2;
		t.ne[0] = be * (i == 0 ? 3 : 1);
		t.ne[1] = 5;
		t.ne[2] = 4;
		t.fill = p2pio_gguf_pattern_fill;
		t.arg = &seed;
		ret = p2pio_gguf_writer_add_tensor(w, &t);
	}
	ret = ret ?: p2pio_gguf_writer_finish(w);
	p2pio_gguf_writer_free(w);
	return ret;
}

static void check_copy(uint32_t alignment)
{
	struct p2pio_gguf *a = NULL, *b = NULL;
	struct p2pio_error e = { 0 };
	size_t i, ok = 1;
	uint64_t v;
	int ret;

	ret = p2pio_gguf_repack(in, out, alignment, &e);
	tap_ok(!ret, "repack to alignment %u: %s", alignment, ret ? e.msg : "ok");
	if (p2pio_gguf_open(in, &a, NULL) || p2pio_gguf_open(out, &b, NULL)) {
		tap_skip(4, "cannot open");
		goto out;
	}
	tap_ok(p2pio_gguf_alignment(b) == alignment && !p2pio_gguf_get_u64(b, "general.alignment", &v) &&
	       v == alignment, "general.alignment is %u", alignment);
	for (i = 0; i < p2pio_gguf_tensor_count(b); i++) {
		const struct p2pio_gguf_tensor *ta = p2pio_gguf_tensor(a, i), *tb = p2pio_gguf_tensor(b, i);
		const void *db;

		ok &= tb->file_offset % alignment == 0 && !strcmp(ta->name, tb->name);
		ok &= !p2pio_gguf_tensor_data(b, i, &db, NULL) &&
		      p2pio_pattern_check(seed, ta->file_offset, db, tb->size, NULL);
	}
	tap_ok(ok && p2pio_gguf_tensor_count(b) == 5,
	       "every tensor aligned, in order, with the input's bytes (pattern of the input offsets)");
	ok = p2pio_gguf_kv_count(a) == p2pio_gguf_kv_count(b);
	for (i = 0; ok && i < p2pio_gguf_kv_count(a); i++) {
		const char *k = p2pio_gguf_kv_key(a, i);

		ok = !strcmp(k, p2pio_gguf_kv_key(b, i));
	}
	tap_ok(ok, "metadata keys preserved in order");
	tap_ok(!strcmp(p2pio_gguf_kv_key(b, p2pio_gguf_kv_count(b) - 1), "general.alignment"),
	       "general.alignment comes last");
out:
	p2pio_gguf_close(a);
	p2pio_gguf_close(b);
}

typedef int (*repack_step)(struct p2pio_gguf *in, const char *path, uint32_t alignment,
			   struct p2pio_error *err);

/*
 * @step in a child, so that a SIGBUS (the input read through a mapping that outlived the
 * file's end) fails the test rather than killing it. Returns the step's result, with its
 * error in *@e, or 1 when the child did not exit normally (*@sig: the signal).
 */
static int run_step(repack_step step, struct p2pio_gguf *g, const char *path, struct p2pio_error *e,
		    int *sig)
{
	int fds[2], ret = 1, status;
	pid_t pid;

	*sig = 0;
	memset(e, 0, sizeof(*e));
	if (pipe(fds))
		return 1;
	pid = fork();
	if (!pid) {
		close(fds[0]);
		ret = step(g, path, 4096, e);
		if (write(fds[1], &ret, sizeof(ret)) != sizeof(ret) ||
		    write(fds[1], e, sizeof(*e)) != sizeof(*e))
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	if (pid > 0 && waitpid(pid, &status, 0) == pid) {
		if (WIFSIGNALED(status))
			*sig = WTERMSIG(status);
		else if (WIFEXITED(status) && !WEXITSTATUS(status) &&
			 (read(fds[0], &ret, sizeof(ret)) != sizeof(ret) ||
			  read(fds[0], e, sizeof(*e)) != sizeof(*e)))
			ret = 1;
	}
	close(fds[0]);
	return ret;
}

/*
 * An input truncated by someone else after it was opened, once while it is copied and once
 * while the copy is verified: the repack reads it with pread(), so it fails with a message
 * naming the tensor that is cut short, and leaves the output as it was.
 */
static void check_shrunk(const uint8_t *bytes, size_t len)
{
	struct p2pio_gguf *g = NULL;
	const struct p2pio_gguf_tensor *t;
	struct p2pio_error e = { 0 };
	char shrunk[300];
	uint8_t *o1, *o2;
	size_t l1, l2;
	uint64_t cut;
	FILE *f;
	int ret, sig = 0, n;

	snprintf(shrunk, sizeof(shrunk), "%s/shrunk.gguf", dir);
	f = fopen(shrunk, "wb");
	if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) ||
	    p2pio_gguf_open(shrunk, &g, NULL)) {
		tap_skip(8, "cannot write or open a copy of the input");
		return;
	}
	unlink(out);
	n = count_entries();
	/*
	 * Cut the 4200-byte blk.0.ffn_down_exps.weight 100 bytes in: with 4 KiB pages its end
	 * lies in a page wholly past the new end of the file, which a mapping reads as SIGBUS.
	 */
	t = p2pio_gguf_tensor_by_name(g, "blk.0.ffn_down_exps.weight");
	cut = t->file_offset + 100;
	ret = truncate(shrunk, (off_t)cut) ? -errno : run_step(gguf_repack_from, g, out, &e, &sig);
	tap_ok(!sig, "an input truncated before the copy does not kill the repack (signal %d)",
	       sig);
	tap_is_int(ret, -ENODATA, "it fails with -ENODATA: %s", e.msg);
	tap_ok(strstr(e.msg, "shrank") && strstr(e.msg, t->name) && e.offset == cut,
	       "the message says the input shrank, names the tensor and the offset is the new end");
	tap_ok(stat(out, &(struct stat){ 0 }) && errno == ENOENT && count_entries() == n,
	       "no output, no temporary file");
	p2pio_gguf_close(g);
	g = NULL;

	/*
	 * A good copy; then the input shrinks to nothing while the copy is compared with it
	 * (every page of a mapping past the end: SIGBUS whatever the page size).
	 */
	f = fopen(shrunk, "wb");
	if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) ||
	    p2pio_gguf_repack(shrunk, out, 4096, NULL) || p2pio_gguf_open(shrunk, &g, NULL)) {
		tap_skip(4, "cannot rewrite, repack or open the input");
		goto out;
	}
	o1 = slurp(out, &l1);
	t = p2pio_gguf_tensor(g, 0);
	ret = truncate(shrunk, 0) ? -errno : run_step(gguf_repack_verify, g, out, &e, &sig);
	tap_ok(!sig, "an input truncated before the verification does not kill it (signal %d)",
	       sig);
	tap_is_int(ret, -ENODATA, "the verification fails with -ENODATA: %s", e.msg);
	tap_ok(strstr(e.msg, "shrank") && strstr(e.msg, t->name) && e.offset == 0,
	       "the message says the input shrank and names the first tensor");
	o2 = slurp(out, &l2);
	tap_ok(o1 && o2 && l1 == l2 && !memcmp(o1, o2, l1), "the verified file is left as it was");
	free(o1);
	free(o2);
out:
	p2pio_gguf_close(g);
	unlink(shrunk);
	unlink(out);
}

int main(void)
{
	uint8_t *before, *after;
	size_t lb, la;
	struct p2pio_error e = { 0 };
	char other[300];
	struct stat st;
	int ret;

	if (!mkdtemp(dir))
		tap_bail("mkdtemp failed");
	snprintf(in, sizeof(in), "%s/in.gguf", dir);
	snprintf(out, sizeof(out), "%s/out.gguf", dir);
	tap_plan(3 * 5 + 13 + 8);
	tap_ok(!make_input(32), "input written (alignment 32, general.alignment kept)");
	before = slurp(in, &lb);

	check_copy(4096);
	check_copy(65536);
	check_copy(32);

	after = slurp(in, &la);
	tap_ok(before && after && la == lb && !memcmp(before, after, la), "the input is untouched");
	free(after);

	tap_is_int(p2pio_gguf_repack(in, in, 4096, &e), -EINVAL, "output == input refused");
	tap_ok(strstr(e.msg, "input") != NULL, "message: %s", e.msg);
	snprintf(other, sizeof(other), "%s/link.gguf", dir);
	ret = symlink("in.gguf", other);
	tap_is_int(ret ?: p2pio_gguf_repack(in, other, 4096, NULL), -EINVAL,
		   "output that is a symlink to the input refused");
	unlink(other);
	ret = link(in, other) ?: p2pio_gguf_repack(in, other, 4096, NULL);
	tap_is_int(ret, -EINVAL, "output that is a hard link to the input refused");
	unlink(other);
	tap_is_int(p2pio_gguf_repack(in, out, 48, NULL), -EINVAL, "alignment 48 refused");
	tap_is_int(p2pio_gguf_repack(in, out, 16, NULL), -EINVAL, "alignment 16 refused");

	/* Failures leave no output and no temporary file. */
	unlink(out);
	snprintf(other, sizeof(other), "%s/nodir/out.gguf", dir);
	tap_ok(p2pio_gguf_repack(in, other, 4096, &e) == -ENOENT, "unwritable output fails: %s", e.msg);
	tap_ok(p2pio_gguf_repack(out, other, 4096, &e) == -ENOENT && count_entries() == 1,
	       "missing input fails and nothing is created: %s", e.msg);
	/* A corrupt input: the reader's error comes through; the output stays absent. */
	snprintf(other, sizeof(other), "%s/bad.gguf", dir);
	{
		FILE *f = fopen(other, "wb");

		fwrite(before, 1, 40, f);
		fclose(f);
	}
	ret = p2pio_gguf_repack(other, out, 4096, &e);
	tap_ok(ret < 0 && e.offset != P2PIO_NO_OFFSET, "a truncated input is refused at offset %llu: %s",
	       (unsigned long long)e.offset, e.msg);
	tap_ok(stat(out, &st) && errno == ENOENT && count_entries() == 2, "no output, no temporary file");
	unlink(other);
	after = slurp(in, &la);
	tap_ok(after && la == lb && !memcmp(before, after, la), "the input is still untouched");
	free(after);
	check_shrunk(before, lb);
	free(before);
	unlink(in);
	unlink(out);
	rmdir(dir);
	return tap_exit();
}
