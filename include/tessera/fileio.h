/* tessera io: whole-file reading, atomic whole-file writing, the one check
 * every output path goes through, and the lookup of shipped model files.
 * Shared by every writer (safetensors, PNG, tokenizer.json, token caches,
 * checkpoints) and every family's default paths. src/io/fileio.c. */
#ifndef TESSERA_FILEIO_H
#define TESSERA_FILEIO_H

#include "tessera/core.h"

#include <stdio.h>

/* Reads the whole file into *data (malloc'd, NUL-terminated, caller frees)
 * and its size into *len. A missing or unreadable file is a status naming
 * the path. path "-" reads stdin. */
tsr_status tsr_read_file(const char *path, char **data, size_t *len);

/* The check a loader runs before it opens a model, tokenizer or other
 * binary input: an existing path that is not a regular file is refused at
 * once ("<path>: not a regular file (a FIFO)"), since opening a FIFO blocks
 * until a writer comes and a device never ends. A path that does not exist
 * (or cannot be stat'ed) passes: the open then says why. Prompt and text
 * readers (tsr_read_file) do not use it: a pipe is a fine prompt. */
tsr_status tsr_input_check(const char *path);

/* ------------------------------------------------------------ outputs */

/* The check to run on every output path BEFORE any long work (training,
 * sampling, tokenizing), so a bad --out fails in a second, not at the end:
 *  - "-" (stdout) is accepted;
 *  - an existing target that is not a regular file (directory, device node,
 *    FIFO, socket, symlink) is refused: the atomic writer would replace it;
 *  - the target's directory must exist and be writable (a temporary file is
 *    created beside the target and removed again).
 * The status names the path and what is wrong. Nothing is left behind. */
tsr_status tsr_output_check(const char *path);

/* An output file being written atomically: data goes to `path.tmp` (created
 * new, never through a symlink), and tsr_atomic_commit fsyncs it, renames it
 * over path and fsyncs the directory. path "-" writes straight to stdout.
 * tsr_atomic_open runs the non-regular-target part of tsr_output_check. */
typedef struct {
    FILE *f;
    char *path, *tmp; /* tmp NULL for stdout */
} tsr_atomic_file;

tsr_status tsr_atomic_open(tsr_atomic_file *af, const char *path);
/* ok: the caller's writes succeeded. On !ok or any failure the tmp is
 * removed and path is untouched; the returned status names path (for !ok it
 * is a generic write failure unless errno says more). Always frees af. */
tsr_status tsr_atomic_commit(tsr_atomic_file *af, bool ok);
/* Drops a started write: removes the tmp, frees af. */
void tsr_atomic_abort(tsr_atomic_file *af);

/* Writes a then b (lb may be 0) to path atomically (see tsr_atomic_open).
 * On failure the tmp is removed and path is untouched. */
tsr_status tsr_write_file_atomic(const char *path, const void *a, size_t la, const void *b,
                                 size_t lb);

/* ------------------------------------------------------ shipped models */

/* 16 hex digits (out, terminated) of FNV-1a 64 over a file's bytes: ties a
 * derived file (a cache, an adapter) to the exact file it was made from. */
tsr_status tsr_file_fnv1a64(const char *path, char out[17]);
/* Finds a shipped model file or directory by name ("pycode",
 * "fmnist_cnn.safetensors"; a leading "models/" is ignored), first match in:
 *   1. $TESSERA_MODELS/<name>
 *   2. the install prefix: <bindir>/../share/tessera/models/<name>, then the
 *      prefix configured at build time (<prefix>/share/tessera/models)
 *   3. beside the binary: <bindir>/models/<name>, <bindir>/../models/<name>
 *      (an in-tree build/), and the source tree's models/ (any build dir)
 *   4. the working directory: models/<name>
 * out gets the path; false (out = "") when none exists. */
bool tsr_find_model(const char *name, char *out, size_t n);
/* The same lookup for a default path: buf when found, else name itself
 * (so an error names it). */
const char *tsr_find_model_or(const char *name, char *buf, size_t n);

/* Finds another shipped file by its path in the source tree
 * ("data/python_val_files.txt", "bench/prompts_pyval.jsonl"), first match
 * in: <bindir>/../share/tessera/<rel>, the configured install prefix's
 * share/tessera/<rel>, the source tree, the working directory. */
bool tsr_find_shipped(const char *rel, char *out, size_t n);
const char *tsr_find_shipped_or(const char *rel, char *buf, size_t n);

/* Resolves a path `rec` recorded inside the file `owner` (e.g. the
 * tokenizer an ELM generator names): absolute paths as they are; relative
 * ones against owner's directory, then its basename beside owner, then the
 * shipped-model lookup above. false (out = rec) when none exists. */
bool tsr_resolve_recorded(const char *owner, const char *rec, char *out, size_t n);

#endif
