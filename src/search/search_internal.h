/* tessera search: helpers shared by the files of src/search only. */
#ifndef TSR_SEARCH_INTERNAL_H
#define TSR_SEARCH_INTERNAL_H

#include "tessera/search.h"

/* Calls fn for each line of a plain or gzip text file (newline stripped,
 * 1-based line numbers); stops at the first error status. */
typedef tsr_status (*srch_line_fn)(const char *line, int lineno, void *ud);
tsr_status srch_read_lines(const char *path, srch_line_fn fn, void *ud);

char *srch_strdup(const char *s);
/* appends a copy of s to the set v (no duplicates) */
void srch_strv_push(char ***v, int *n, const char *s);
void srch_strv_free(char **v, int n);
/* category node id of name at level (added when new) */
int32_t srch_cat_node(tsr_catalog *cat, tsr_strmap *m, int level, const char *name);
/* items[i].efficiency = rank percentile of raw[i], ties share the mean rank */
void srch_rank_normalise(tsr_catalog *cat, const double *raw);

#endif
