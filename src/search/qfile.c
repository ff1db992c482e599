/* tessera search: JSONL query files, the input of `higen eval` and
 * `ebrm eval`: one {"query": str, "relevant": [ids], "user": optional,
 * "trigger": optional item id (item-to-item queries)} object a line. Parsing (fuzzed by fuzz/fuzz_qfile.c) is separate from
 * resolving ids against a catalog. */
#include "search_internal.h"

#include "tessera/fileio.h"

#include <cJSON.h>
#include <math.h>
#include <string.h>

/* a user-supplied string made safe for a one-line message */
static void clip(char *out, size_t n, const char *s) {
    size_t j = 0;
    for (; *s && j + 4 < n; s++) out[j++] = (unsigned char)*s < 32 ? '?' : *s;
    if (*s) {
        out[j++] = '.';
        out[j++] = '.';
        out[j++] = '.';
    }
    out[j] = 0;
}

void tsr_qfile_free(tsr_qfile *qf) {
    for (int i = 0; i < qf->n; i++) {
        free(qf->l[i].query);
        free(qf->l[i].trigger);
        srch_strv_free(qf->l[i].relevant, qf->l[i].n_relevant);
    }
    free(qf->l);
    memset(qf, 0, sizeof *qf);
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
    return true;
}

/* an item id from a JSON string or a non-negative integer; false otherwise */
static bool id_of(const cJSON *e, char *out, size_t n) {
    if (cJSON_IsString(e) && e->valuestring && e->valuestring[0]) {
        if (strlen(e->valuestring) >= n) return false;
        snprintf(out, n, "%s", e->valuestring);
        return true;
    }
    if (cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < 9e15 &&
        e->valuedouble == floor(e->valuedouble)) {
        snprintf(out, n, "%lld", (long long)e->valuedouble);
        return true;
    }
    return false;
}

static tsr_status parse_line(tsr_qline *ql, const char *s, size_t len, const char *name, int lineno) {
    memset(ql, 0, sizeof *ql);
    ql->line = lineno;
    ql->user = -1;
    cJSON *o = cJSON_ParseWithLength(s, len);
    tsr_status st = tsr_ok();
    const cJSON *q = NULL, *r = NULL, *u = NULL, *t = NULL, *e;
    if (!cJSON_IsObject(o)) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: not a JSON object", name, lineno);
        goto done;
    }
    q = cJSON_GetObjectItemCaseSensitive(o, "query");
    r = cJSON_GetObjectItemCaseSensitive(o, "relevant");
    u = cJSON_GetObjectItemCaseSensitive(o, "user");
    t = cJSON_GetObjectItemCaseSensitive(o, "trigger");
    if (!cJSON_IsString(q) || !q->valuestring) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: \"query\" must be a string", name, lineno);
        goto done;
    }
    if (blank(q->valuestring, strlen(q->valuestring))) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: empty query", name, lineno);
        goto done;
    }
    if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) == 0) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: \"relevant\" must be a non-empty array of item ids",
                        name, lineno);
        goto done;
    }
    char id[256];
    cJSON_ArrayForEach(e, r) {
        if (!id_of(e, id, sizeof id)) {
            st = tsr_errorf(TSR_ERR_FORMAT,
                            "%s:%d: \"relevant\" holds something that is not an item id (a "
                            "non-empty string or a non-negative integer)",
                            name, lineno);
            goto done;
        }
        srch_strv_push(&ql->relevant, &ql->n_relevant, id);
    }
    if (u && !cJSON_IsNull(u)) {
        char *end = NULL;
        long long v = -1;
        if (cJSON_IsNumber(u) && u->valuedouble >= 0 && u->valuedouble < 9e15 &&
            u->valuedouble == floor(u->valuedouble))
            v = (long long)u->valuedouble;
        else if (cJSON_IsString(u) && u->valuestring && u->valuestring[0] >= '0' &&
                 u->valuestring[0] <= '9') {
            v = strtoll(u->valuestring, &end, 10);
            if (*end || v < 0) v = -1;
        }
        if (v < 0) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: \"user\" must be a non-negative integer id",
                            name, lineno);
            goto done;
        }
        ql->user = v;
    }
    if (t && !cJSON_IsNull(t)) {
        if (!id_of(t, id, sizeof id)) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: \"trigger\" must be an item id (a non-empty string)", name,
                            lineno);
            goto done;
        }
        ql->trigger = srch_strdup(id);
    }
    ql->query = srch_strdup(q->valuestring);
done:
    cJSON_Delete(o);
    if (st.code != TSR_OK) {
        srch_strv_free(ql->relevant, ql->n_relevant);
        ql->relevant = NULL;
        ql->n_relevant = 0;
        free(ql->trigger);
        ql->trigger = NULL;
    }
    return st;
}

tsr_status tsr_qfile_parse(tsr_qfile *qf, const char *buf, size_t len, const char *name) {
    memset(qf, 0, sizeof *qf);
    int lineno = 0, cap = 0;
    size_t at = 0;
    while (at < len) {
        size_t e = at;
        while (e < len && buf[e] != '\n') e++;
        lineno++;
        if (!blank(buf + at, e - at)) {
            if (memchr(buf + at, 0, e - at)) {
                tsr_qfile_free(qf);
                return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: NUL byte in line", name, lineno);
            }
            if (qf->n == cap) {
                cap = cap ? 2 * cap : 64;
                qf->l = realloc(qf->l, (size_t)cap * sizeof *qf->l);
                TSR_ASSERT(qf->l);
            }
            tsr_status st = parse_line(&qf->l[qf->n], buf + at, e - at, name, lineno);
            if (st.code != TSR_OK) {
                tsr_qfile_free(qf);
                return st;
            }
            qf->n++;
        }
        at = e + 1;
    }
    if (qf->n == 0) return tsr_errorf(TSR_ERR_FORMAT, "%s: no queries in the file", name);
    return tsr_ok();
}

tsr_status tsr_qfile_read(tsr_qfile *qf, const char *path) {
    memset(qf, 0, sizeof *qf);
    char *buf = NULL;
    size_t len = 0;
    tsr_status st = tsr_read_file(path, &buf, &len);
    if (st.code != TSR_OK) return st;
    st = tsr_qfile_parse(qf, buf, len, path);
    free(buf);
    return st;
}

tsr_status tsr_qfile_resolve(tsr_queryset *qs, const tsr_qfile *qf, const tsr_catalog *cat,
                             const char *name) {
    int32_t *rel = NULL;
    int cap = 0;
    char c[80];
    for (int i = 0; i < qf->n; i++) {
        const tsr_qline *l = &qf->l[i];
        if (l->user >= 0 && cat->n_users == 0)
            return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: \"user\" given, but this catalog has no users",
                              name, l->line);
        if (l->user >= 0 && tsr_catalog_find_user(cat, l->user) < 0)
            return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: unknown user %lld", name, l->line,
                              (long long)l->user);
        if (l->n_relevant > cap) {
            cap = l->n_relevant;
            rel = realloc(rel, (size_t)cap * sizeof *rel);
            TSR_ASSERT(rel);
        }
        for (int j = 0; j < l->n_relevant; j++) {
            rel[j] = tsr_catalog_find(cat, l->relevant[j]);
            if (rel[j] < 0) {
                clip(c, sizeof c, l->relevant[j]);
                free(rel);
                return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: unknown item '%s' (not in the catalog)",
                                  name, l->line, c);
            }
        }
        int32_t trig = -1;
        if (l->trigger) {
            trig = tsr_catalog_find(cat, l->trigger);
            clip(c, sizeof c, l->trigger);
            for (int j = 0; trig >= 0 && j < l->n_relevant; j++)
                if (rel[j] == trig) {
                    free(rel);
                    return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: the trigger '%s' is among its own relevant items",
                                      name, l->line, c);
                }
            if (trig < 0) {
                free(rel);
                return tsr_errorf(TSR_ERR_FORMAT, "%s:%d: unknown trigger '%s' (not in the catalog)", name,
                                  l->line, c);
            }
        }
        tsr_queryset_add(qs, l->query, l->user, rel, l->n_relevant, TSR_QC_FILE,
                         tsr_query_split(trig >= 0 ? cat->items[trig].id : l->query));
        qs->q[qs->n - 1].trigger = trig;
    }
    free(rel);
    return tsr_ok();
}

tsr_status tsr_queryset_write(const tsr_queryset *qs, const tsr_catalog *cat, int split,
                              const char *path) {
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    TSR_ASSERT(out);
    for (int32_t i = 0; i < qs->n; i++) {
        const tsr_query *q = &qs->q[i];
        if (split >= 0 && q->split != split) continue;
        cJSON *o = cJSON_CreateObject(), *r = cJSON_CreateArray();
        TSR_ASSERT(o && r);
        cJSON_AddStringToObject(o, "query", q->text);
        for (int j = 0; j < q->n_rel; j++)
            cJSON_AddItemToArray(r, cJSON_CreateString(cat->items[q->rel[j]].id));
        cJSON_AddItemToObject(o, "relevant", r);
        if (q->user >= 0) cJSON_AddNumberToObject(o, "user", (double)q->user);
        if (q->trigger >= 0) cJSON_AddStringToObject(o, "trigger", cat->items[q->trigger].id);
        char *s = cJSON_PrintUnformatted(o);
        TSR_ASSERT(s);
        size_t m = strlen(s);
        if (n + m + 2 > cap) {
            cap = (n + m + 2) * 2;
            out = realloc(out, cap);
            TSR_ASSERT(out);
        }
        memcpy(out + n, s, m);
        n += m;
        out[n++] = '\n';
        free(s);
        cJSON_Delete(o);
    }
    tsr_status st = tsr_write_file_atomic(path, out, n, NULL, 0);
    free(out);
    return st;
}
