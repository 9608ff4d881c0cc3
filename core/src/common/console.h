/* console.h — the human sink: one sanitized line per record, text or JSON lines, to stderr/stdout. */
#ifndef POLYTEL_CONSOLE_H
#define POLYTEL_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "polytel.h"

/*
 * dest: POLYTEL_CONSOLE_STDERR/_STDOUT/_OFF; format: POLYTEL_CONSOLE_FORMAT_TEXT/_JSON;
 * level: threshold; color: 0/1. Thread-safe (atomics), callable any time.
 */
void polytel__console_configure(int dest, int format, int level, int color);

/* Redirect output to an fd (tests); -1 restores the configured destination. */
void polytel__console_set_fd(int fd);

/*
 * Route finished lines to a function instead of a file descriptor (the wasm
 * build sends them to console.debug/info/warn/error by level). `line` has no
 * trailing newline. NULL restores fd output.
 */
typedef void (*polytel__console_writer_fn)(int level, const char *line, size_t len);
void polytel__console_set_writer(polytel__console_writer_fn fn);

/* Nonzero when a record at `level` would be printed. Cheap (one relaxed load). */
int polytel__console_enabled(int level);

/*
 * Print one line: `2026-11-22T04:02:36.123456Z INFO target: message key=value`
 * (text) or one JSON object per line. Control characters, newlines and invalid
 * UTF-8 in target, message, keys and values are escaped, so a record can never
 * forge a second line or emit a terminal escape. One write(2) per line.
 */
void polytel__console_emit(int level, uint64_t time_ns, const char *target, size_t target_len,
                           const char *msg, size_t msg_len, const polytel_attr_t *attrs, size_t n_attrs);

/* polytel's own diagnostics (warnings, notices), target "polytel". printf-style, not recorded. */
void polytel__diag(int level, const char *fmt, ...) POLYTEL_PRINTF(2, 3);

/*
 * Escape `in` into `out` (capacity cap, always NUL-terminated when cap > 0):
 * \n \r \t as such, other C0/C1 controls and DEL as \xNN / \u00NN, invalid
 * UTF-8 bytes as \xNN, backslash as \\, bidi controls and invisible format
 * characters (U+200B-U+200F, U+202A-U+202E, U+2066-U+2069, U+FEFF, tags, ...)
 * as \uXXXX (\U000XXXXX past the BMP). json != 0 escapes for a JSON string
 * body instead (\" \\ \uXXXX, surrogate pairs). Returns the length written
 * (excluding NUL).
 */
size_t polytel__sanitize(char *out, size_t cap, const char *in, size_t len, int json);

/*
 * Echoing a value in a diagnostic: its first POLYTEL__SHOW_MAX bytes (cut at a
 * character boundary, then "…"), written into buf (at least POLYTEL__SHOW_BUF
 * bytes); the console escapes what remains. Returns buf.
 */
#define POLYTEL__SHOW_MAX 64
#define POLYTEL__SHOW_BUF (POLYTEL__SHOW_MAX + 16)
const char *polytel__show(char *buf, size_t cap, const char *s, size_t len);
/* A file path for a diagnostic: its last POLYTEL__SHOW_MAX bytes after "…" when longer (the end names the
 * file). */
const char *polytel__show_path(char *buf, size_t cap, const char *path);
/* A URL for a diagnostic: userinfo, query and fragment replaced by "…" (they may carry credentials), then
 * cut like polytel__show. NULL gives "". */
const char *polytel__show_url(char *buf, size_t cap, const char *url);

/* Nonzero when s[0..len) is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int polytel__utf8_valid(const char *s, size_t len);

/* Level names: "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL". */
const char *polytel__level_name(int level);

#endif
