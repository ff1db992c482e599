/* tessera io: rasters in and out (include/tessera/raster.h). PNG through
 * libpng (src/io/png.c); everything with georeferencing through GDAL, the
 * library GIS users already have, when the build found it. */
#include "tessera/raster.h"

#include "tessera/fileio.h"
#include "tessera/png.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifdef TSR_HAVE_GDAL
#include <dlfcn.h>
#include <pthread.h>

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdal_alg.h>
#include <gdalwarper.h>
#include <ogr_srs_api.h>
#endif

void tsr_raster_free(tsr_raster *r) {
    free(r->px);
    free(r->wkt);
    memset(r, 0, sizeof *r);
}

bool tsr_raster_have_gdal(void) {
#ifdef TSR_HAVE_GDAL
    return true;
#else
    return false;
#endif
}

static bool is_png(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcasecmp(path + n - 4, ".png") == 0;
}

static tsr_status too_big(const char *path, int64_t w, int64_t h) {
    return tsr_errorf(TSR_ERR_ARG, "%s: %lld x %lld pixels is more than the %lld Mpx read at once: crop or tile it first "
                                   "(e.g. gdal_translate -srcwin)", path, (long long)w, (long long)h,
                      (long long)(TSR_RASTER_MAX_PIXELS >> 20));
}

#ifndef TSR_HAVE_GDAL
static tsr_status no_gdal(const char *path) {
    return tsr_errorf(TSR_ERR_ARG, "%s: this tessera was built without GDAL, so it reads and writes PNG only "
                                   "(install libgdal-dev and rebuild for GeoTIFF)", path);
}
#else
/* GDAL is loaded on first use, not linked: libgdal pulls in about a hundred
 * shared libraries (curl, proj, geos, xml2, odbc, heif, ...) whose loading
 * and relocation cost every tessera command ~80 ms of CPU at start-up, while
 * only apt's GeoTIFF input/output and reprojection need it. The headers
 * still give the types, struct layouts and macros; every call goes through
 * this table, filled once by dlopen/dlsym of the libgdal the build found
 * (its SONAME, TSR_GDAL_SONAME, from CMakeLists.txt). */
#ifndef TSR_GDAL_SONAME
#define TSR_GDAL_SONAME "libgdal.so"
#endif
#define TSR_GDAL_FNS(X)                                                                                               \
    X(GDALAllRegister) X(CPLSetErrorHandler) X(CPLQuietErrorHandler) X(CPLErrorReset) X(CPLGetLastErrorMsg)          \
    X(CPLGetLastErrorType) X(CPLMalloc) X(CSLSetNameValue) X(CSLDestroy) X(GDALOpen) X(GDALClose)                    \
    X(GDALGetProjectionRef) X(GDALGetGeoTransform) X(GDALSetGeoTransform) X(GDALSetProjection) X(GDALGetRasterBand)  \
    X(GDALGetRasterXSize) X(GDALGetRasterYSize) X(GDALGetRasterCount) X(GDALRasterIO) X(GDALRasterIOEx) X(GDALCreate) \
    X(GDALGetDriverByName) X(GDALCreateGenImgProjTransformer2) X(GDALGenImgProjTransform)                            \
    X(GDALDestroyGenImgProjTransformer) X(GDALCreateWarpOptions) X(GDALDestroyWarpOptions)                            \
    X(GDALCreateWarpOperation) X(GDALChunkAndWarpImage) X(GDALDestroyWarpOperation)

static struct {
#define TSR_GDAL_FIELD(f) __typeof__(&f) f;
    TSR_GDAL_FNS(TSR_GDAL_FIELD)
#undef TSR_GDAL_FIELD
} gd;
static pthread_once_t gdal_once = PTHREAD_ONCE_INIT;
static bool gdal_loaded;
static char gdal_why[320];

static void gdal_load(void) {
    void *lib = dlopen(TSR_GDAL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(gdal_why, sizeof gdal_why, "%s could not be loaded (install gdal-bin, which brings it): %.120s", TSR_GDAL_SONAME,
                 e ? e : "dlopen failed");
        return;
    }
    void *p;
#define TSR_GDAL_SYM(f)                                                                                              \
    if (!(p = dlsym(lib, #f))) {                                                                                     \
        snprintf(gdal_why, sizeof gdal_why, "%s has no %s (a GDAL too old or not the one tessera was built with)",     \
                 TSR_GDAL_SONAME, #f);                                                                               \
        dlclose(lib);                                                                                                \
        return;                                                                                                      \
    }                                                                                                                \
    memcpy(&gd.f, &p, sizeof p);
    TSR_GDAL_FNS(TSR_GDAL_SYM)
#undef TSR_GDAL_SYM
    gd.GDALAllRegister();
    gd.CPLSetErrorHandler(gd.CPLQuietErrorHandler);
    gdal_loaded = true;
}

/* loads GDAL once (thread-safe); a clear error naming path when it cannot */
static tsr_status gdal_init(const char *path) {
    pthread_once(&gdal_once, gdal_load);
    if (!gdal_loaded) return tsr_errorf(TSR_ERR_IO, "%s: GeoTIFF needs GDAL: %s", path, gdal_why);
    return tsr_ok();
}

static tsr_status gdal_open(const char *path, GDALDatasetH *ds) {
    *ds = NULL;
    tsr_status st = gdal_init(path);
    if (st.code) return st;
    if (access(path, R_OK) != 0 && strncmp(path, "/vsi", 4) != 0)
        return tsr_errorf(TSR_ERR_IO, "%s: cannot open (no such file or not readable)", path);
    gd.CPLErrorReset();
    *ds = gd.GDALOpen(path, GA_ReadOnly);
    if (!*ds) {
        const char *m = gd.CPLGetLastErrorMsg();
        return tsr_errorf(TSR_ERR_FORMAT, "%s: not a raster GDAL can read%s%.160s", path, m && *m ? ": " : "", m ? m : "");
    }
    return tsr_ok();
}

static void georef_of(GDALDatasetH ds, tsr_raster *r) {
    const char *wkt = gd.GDALGetProjectionRef(ds);
    if (gd.GDALGetGeoTransform(ds, r->gt) == CE_None && wkt && *wkt) {
        r->georef = true;
        r->wkt = strdup(wkt);
        TSR_ASSERT(r->wkt);
    }
}

/* bands (1-based list) of ds into px (h,w,nb) as bytes, decimated to (ow,oh) */
static tsr_status read_bands(GDALDatasetH ds, const char *path, int x0, int y0, int w, int h, int ow, int oh,
                             const int *bands, int nb, bool mode, uint8_t *px) {
    GDALRasterIOExtraArg ex;
    INIT_RASTERIO_EXTRA_ARG(ex);
    ex.eResampleAlg = mode ? GRIORA_Mode : GRIORA_NearestNeighbour;
    gd.CPLErrorReset();
    for (int b = 0; b < nb; b++) {
        GDALRasterBandH band = gd.GDALGetRasterBand(ds, bands[b]);
        CPLErr e = band ? gd.GDALRasterIOEx(band, GF_Read, x0, y0, w, h, px + b, ow, oh, GDT_Byte, nb,
                                         (GSpacing)nb * ow, &ex)
                        : CE_Failure;
        if (e != CE_None) {
            const char *m = gd.CPLGetLastErrorMsg();
            return tsr_errorf(TSR_ERR_FORMAT, "%s: cannot read band %d (corrupt or truncated?)%s%.160s", path, bands[b],
                              m && *m ? ": " : "", m ? m : "");
        }
    }
    return tsr_ok();
}
#endif

tsr_status tsr_raster_read_rgb(const char *path, tsr_raster *r) {
    memset(r, 0, sizeof *r);
    if (is_png(path)) {
        int ch;
        uint8_t *px;
        tsr_status st = tsr_png_read(path, &px, &r->w, &r->h, &ch);
        if (st.code) return st;
        if ((int64_t)r->w * r->h > TSR_RASTER_MAX_PIXELS) {
            free(px);
            return too_big(path, r->w, r->h);
        }
        r->bands = 3;
        if (ch == 3) r->px = px;
        else {
            r->px = malloc((size_t)r->w * r->h * 3);
            TSR_ASSERT(r->px);
            for (int64_t i = 0; i < (int64_t)r->w * r->h; i++)
                for (int k = 0; k < 3; k++) r->px[3 * i + k] = px[i * ch];
            free(px);
        }
        return tsr_ok();
    }
    return tsr_raster_read_rgb_window(path, 0, 0, 0, 0, r);
}

tsr_status tsr_raster_read_rgb_window(const char *path, int x0, int y0, int w, int h, tsr_raster *r) {
    memset(r, 0, sizeof *r);
#ifndef TSR_HAVE_GDAL
    (void)x0, (void)y0, (void)w, (void)h;
    return no_gdal(path);
#else
    GDALDatasetH ds = NULL;
    tsr_status st = gdal_open(path, &ds);
    if (st.code) return st;
    const int W = gd.GDALGetRasterXSize(ds), H = gd.GDALGetRasterYSize(ds), nb = gd.GDALGetRasterCount(ds);
    if (nb < 1 || W < 1 || H < 1) {
        gd.GDALClose(ds);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: a raster with no bands or no pixels", path);
    }
    if (w == 0 && h == 0) { /* the whole raster */
        w = W;
        h = H;
    }
    if (x0 < 0 || y0 < 0 || w < 1 || h < 1 || x0 > W - w || y0 > H - h) {
        gd.GDALClose(ds);
        return tsr_errorf(TSR_ERR_ARG, "%s: window %d,%d %dx%d lies outside the %d x %d raster", path, x0, y0, w, h, W, H);
    }
    if ((int64_t)w * h > TSR_RASTER_MAX_PIXELS) {
        gd.GDALClose(ds);
        return too_big(path, w, h);
    }
    int bands[3] = {1, nb >= 3 ? 2 : 1, nb >= 3 ? 3 : 1};
    r->w = w;
    r->h = h;
    r->bands = 3;
    r->px = malloc((size_t)w * h * 3);
    TSR_ASSERT(r->px);
    st = read_bands(ds, path, x0, y0, w, h, w, h, bands, 3, false, r->px);
    if (!st.code) {
        georef_of(ds, r);
        if (r->georef) { /* the window's own origin */
            const double g0 = r->gt[0], g3 = r->gt[3];
            r->gt[0] = g0 + x0 * r->gt[1] + y0 * r->gt[2];
            r->gt[3] = g3 + x0 * r->gt[4] + y0 * r->gt[5];
        }
    }
    gd.GDALClose(ds);
    if (st.code) tsr_raster_free(r);
    return st;
#endif
}

tsr_status tsr_raster_probe(const char *path, tsr_raster *r) {
    memset(r, 0, sizeof *r);
    if (is_png(path)) {
        tsr_raster img;
        tsr_status st = tsr_raster_read_rgb(path, &img);
        if (st.code) return st;
        r->w = img.w;
        r->h = img.h;
        r->bands = 3;
        tsr_raster_free(&img);
        return tsr_ok();
    }
#ifndef TSR_HAVE_GDAL
    return no_gdal(path);
#else
    GDALDatasetH ds = NULL;
    tsr_status st = gdal_open(path, &ds);
    if (st.code) return st;
    r->w = gd.GDALGetRasterXSize(ds);
    r->h = gd.GDALGetRasterYSize(ds);
    r->bands = gd.GDALGetRasterCount(ds);
    if (r->bands < 1 || r->w < 1 || r->h < 1) st = tsr_errorf(TSR_ERR_FORMAT, "%s: a raster with no bands or no pixels", path);
    else georef_of(ds, r);
    gd.GDALClose(ds);
    if (st.code) tsr_raster_free(r);
    return st;
#endif
}

static tsr_status classes_on_grid(const char *path, const tsr_raster *img, bool need_overlap, uint8_t **cls) {
    *cls = NULL;
    int64_t N = (int64_t)img->w * img->h;
    if (is_png(path)) {
        int w, h, ch;
        uint8_t *px;
        tsr_status st = tsr_png_read(path, &px, &w, &h, &ch);
        if (st.code) return st;
        if (w != img->w || h != img->h) {
            free(px);
            return tsr_errorf(TSR_ERR_SHAPE, "%s: a PNG land-cover map must be on the image grid: it is %d x %d, the image %d x %d",
                              path, w, h, img->w, img->h);
        }
        *cls = malloc((size_t)N);
        TSR_ASSERT(*cls);
        for (int64_t i = 0; i < N; i++) (*cls)[i] = px[i * ch];
        free(px);
        return tsr_ok();
    }
#ifndef TSR_HAVE_GDAL
    (void)need_overlap;
    return no_gdal(path);
#else
    GDALDatasetH src;
    tsr_status st = gdal_open(path, &src);
    if (st.code) return st;
    if (gd.GDALGetRasterCount(src) < 1) {
        gd.GDALClose(src);
        return tsr_errorf(TSR_ERR_FORMAT, "%s: a raster with no bands", path);
    }
    tsr_raster lc = {0};
    georef_of(src, &lc);
    *cls = calloc((size_t)N, 1);
    TSR_ASSERT(*cls);
    if (!img->georef || !lc.georef) {
        int w = gd.GDALGetRasterXSize(src), h = gd.GDALGetRasterYSize(src), b1 = 1;
        if (w != img->w || h != img->h) {
            st = tsr_errorf(TSR_ERR_SHAPE, "%s: %s, so the land-cover map must be on the image grid: it is %d x %d, the image %d x %d",
                            path, img->georef ? "the land-cover map has no georeferencing" : "the image has no georeferencing",
                            w, h, img->w, img->h);
        } else {
            st = read_bands(src, path, 0, 0, w, h, w, h, &b1, 1, false, *cls);
        }
    } else {
        GDALDatasetH dst = gd.GDALCreate(gd.GDALGetDriverByName("MEM"), "", img->w, img->h, 1, GDT_Byte, NULL);
        TSR_ASSERT(dst);
        gd.GDALSetGeoTransform(dst, (double *)img->gt);
        gd.GDALSetProjection(dst, img->wkt);
        gd.CPLErrorReset();
        void *tr = gd.GDALCreateGenImgProjTransformer2(src, dst, NULL);
        if (!tr) {
            st = tsr_errorf(TSR_ERR_ARG, "%s: cannot transform between its CRS and the image's%s%.120s", path,
                            *gd.CPLGetLastErrorMsg() ? ": " : "", gd.CPLGetLastErrorMsg());
        } else {
            GDALWarpOptions *wo = gd.GDALCreateWarpOptions();
            wo->hSrcDS = src;
            wo->hDstDS = dst;
            wo->nBandCount = 1;
            wo->panSrcBands = gd.CPLMalloc(sizeof(int));
            wo->panDstBands = gd.CPLMalloc(sizeof(int));
            wo->panSrcBands[0] = wo->panDstBands[0] = 1;
            wo->eResampleAlg = GRA_NearestNeighbour; /* class codes: never interpolated */
            wo->papszWarpOptions = gd.CSLSetNameValue(wo->papszWarpOptions, "INIT_DEST", "0");
            wo->pTransformerArg = tr;
            wo->pfnTransformer = gd.GDALGenImgProjTransform;
            GDALWarpOperationH op = gd.GDALCreateWarpOperation(wo);
            CPLErr e = op ? gd.GDALChunkAndWarpImage(op, 0, 0, img->w, img->h) : CE_Failure;
            if (op) gd.GDALDestroyWarpOperation(op);
            gd.GDALDestroyGenImgProjTransformer(tr);
            wo->pTransformerArg = NULL;
            gd.GDALDestroyWarpOptions(wo);
            int b1 = 1;
            if (e != CE_None)
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: reprojection onto the image grid failed%s%.120s", path,
                                *gd.CPLGetLastErrorMsg() ? ": " : "", gd.CPLGetLastErrorMsg());
            else
                st = read_bands(dst, path, 0, 0, img->w, img->h, img->w, img->h, &b1, 1, false, *cls);
            if (!st.code) {
                int64_t covered = 0;
                for (int64_t i = 0; i < N; i++) covered += (*cls)[i] != 0;
                if (!covered && need_overlap)
                    st = tsr_errorf(TSR_ERR_ARG, "%s: the land-cover map does not overlap the image (different places, "
                                                 "or different CRSs with no common area)", path);
            }
        }
        gd.GDALClose(dst);
    }
    gd.GDALClose(src);
    tsr_raster_free(&lc);
    if (st.code) {
        free(*cls);
        *cls = NULL;
    }
    return st;
#endif
}

tsr_status tsr_raster_classes_on_grid(const char *path, const tsr_raster *img, uint8_t **cls) {
    return classes_on_grid(path, img, true, cls);
}

tsr_status tsr_raster_classes_on_grid_any(const char *path, const tsr_raster *img, uint8_t **cls) {
    return classes_on_grid(path, img, false, cls);
}

tsr_status tsr_raster_read_classes_window(const char *path, const double *bbox, int max_side, tsr_raster *r) {
    memset(r, 0, sizeof *r);
#ifndef TSR_HAVE_GDAL
    (void)bbox;
    (void)max_side;
    if (is_png(path)) {
        tsr_raster img;
        tsr_status st = tsr_raster_read_rgb(path, &img);
        if (st.code) return st;
        *r = img;
        r->bands = 1;
        for (int64_t i = 0; i < (int64_t)r->w * r->h; i++) r->px[i] = img.px[3 * i];
        return tsr_ok();
    }
    return no_gdal(path);
#else
    GDALDatasetH ds = NULL;
    tsr_status st = gdal_open(path, &ds);
    if (st.code) return st;
    int W = gd.GDALGetRasterXSize(ds), H = gd.GDALGetRasterYSize(ds);
    double gt[6] = {0, 1, 0, 0, 0, 1};
    bool geo = gd.GDALGetGeoTransform(ds, gt) == CE_None;
    int x0 = 0, y0 = 0, x1 = W, y1 = H;
    if (bbox) {
        if (!geo || gt[2] != 0 || gt[4] != 0) {
            gd.GDALClose(ds);
            return tsr_errorf(TSR_ERR_ARG, "%s: --bbox needs a north-up georeferenced map", path);
        }
        double ax = (bbox[0] - gt[0]) / gt[1], bx = (bbox[2] - gt[0]) / gt[1];
        double ay = (bbox[3] - gt[3]) / gt[5], by = (bbox[1] - gt[3]) / gt[5];
        x0 = (int)(ax < bx ? ax : bx);
        x1 = (int)(ax < bx ? bx : ax) + 1;
        y0 = (int)(ay < by ? ay : by);
        y1 = (int)(ay < by ? by : ay) + 1;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > W) x1 = W;
        if (y1 > H) y1 = H;
        if (x1 <= x0 || y1 <= y0) {
            gd.GDALClose(ds);
            return tsr_errorf(TSR_ERR_ARG, "%s: the --bbox does not overlap the map", path);
        }
    }
    int w = x1 - x0, h = y1 - y0, ow = w, oh = h;
    if (max_side > 0 && (w > max_side || h > max_side)) {
        double f = (double)max_side / (double)(w > h ? w : h);
        ow = (int)(w * f + 0.5);
        oh = (int)(h * f + 0.5);
        if (ow < 1) ow = 1;
        if (oh < 1) oh = 1;
    }
    if ((int64_t)ow * oh > TSR_RASTER_MAX_PIXELS) {
        gd.GDALClose(ds);
        return too_big(path, ow, oh);
    }
    r->w = ow;
    r->h = oh;
    r->bands = 1;
    r->px = malloc((size_t)ow * oh);
    TSR_ASSERT(r->px);
    int b1 = 1;
    st = read_bands(ds, path, x0, y0, w, h, ow, oh, &b1, 1, true, r->px);
    if (!st.code) {
        georef_of(ds, r);
        if (r->georef) {
            r->gt[0] = gt[0] + x0 * gt[1];
            r->gt[3] = gt[3] + y0 * gt[5];
            r->gt[1] = gt[1] * w / ow;
            r->gt[5] = gt[5] * h / oh;
        }
    }
    gd.GDALClose(ds);
    if (st.code) tsr_raster_free(r);
    return st;
#endif
}

struct tsr_raster_writer {
#ifdef TSR_HAVE_GDAL
    GDALDatasetH ds;
#endif
    int w, h;
    char path[4096], tmp[4096];
};

tsr_status tsr_raster_writer_open(tsr_raster_writer **out, const char *path, int w, int h, const tsr_raster *ref) {
    *out = NULL;
#ifndef TSR_HAVE_GDAL
    (void)w, (void)h, (void)ref;
    return no_gdal(path);
#else
    tsr_raster_writer *wr = calloc(1, sizeof *wr);
    TSR_ASSERT(wr);
    int k = snprintf(wr->tmp, sizeof wr->tmp, "%s.tmp", path);
    if (k < 0 || (size_t)k >= sizeof wr->tmp) {
        free(wr);
        return tsr_errorf(TSR_ERR_ARG, "%s: path too long", path);
    }
    snprintf(wr->path, sizeof wr->path, "%s", path);
    wr->w = w;
    wr->h = h;
    tsr_status st = gdal_init(path);
    if (st.code) {
        free(wr);
        return st;
    }
    char **opts = gd.CSLSetNameValue(NULL, "COMPRESS", "DEFLATE");
    if ((int64_t)w * h > ((int64_t)16 << 20)) { /* big masks: internal tiles, and BigTIFF if it may pass 4 GB */
        opts = gd.CSLSetNameValue(opts, "TILED", "YES");
        opts = gd.CSLSetNameValue(opts, "BIGTIFF", "IF_SAFER");
    }
    gd.CPLErrorReset();
    wr->ds = gd.GDALCreate(gd.GDALGetDriverByName("GTiff"), wr->tmp, w, h, 1, GDT_Byte, opts);
    gd.CSLDestroy(opts);
    if (!wr->ds) {
        st = tsr_errorf(TSR_ERR_IO, "%s: cannot create%s%.160s", path, *gd.CPLGetLastErrorMsg() ? ": " : "",
                                   gd.CPLGetLastErrorMsg());
        free(wr);
        return st;
    }
    if (ref && ref->georef) {
        gd.GDALSetGeoTransform(wr->ds, (double *)ref->gt);
        gd.GDALSetProjection(wr->ds, ref->wkt);
    }
    *out = wr;
    return tsr_ok();
#endif
}

tsr_status tsr_raster_writer_put(tsr_raster_writer *wr, int x0, int y0, int w, int h, const uint8_t *mask) {
#ifndef TSR_HAVE_GDAL
    (void)x0, (void)y0, (void)w, (void)h, (void)mask;
    return no_gdal(wr->path);
#else
    if (x0 < 0 || y0 < 0 || w < 1 || h < 1 || x0 > wr->w - w || y0 > wr->h - h)
        return tsr_errorf(TSR_ERR_ARG, "%s: window %d,%d %dx%d lies outside the %d x %d mask", wr->path, x0, y0, w, h,
                          wr->w, wr->h);
    CPLErr e = gd.GDALRasterIO(gd.GDALGetRasterBand(wr->ds, 1), GF_Write, x0, y0, w, h, (void *)mask, w, h, GDT_Byte, 0, 0);
    return e == CE_None ? tsr_ok() : tsr_errorf(TSR_ERR_IO, "%s: write failed", wr->path);
#endif
}

tsr_status tsr_raster_writer_close(tsr_raster_writer *wr, bool commit) {
    if (!wr) return tsr_ok();
    tsr_status st = tsr_ok();
#ifdef TSR_HAVE_GDAL
    gd.CPLErrorReset();
    gd.GDALClose(wr->ds); /* flushes */
    if (commit && gd.CPLGetLastErrorType() >= CE_Failure) st = tsr_errorf(TSR_ERR_IO, "%s: write failed", wr->path);
    FILE *f = commit && !st.code ? fopen(wr->tmp, "rb+") : NULL;
    if (f) {
        fflush(f);
        fsync(fileno(f));
        fclose(f);
    }
    if (!commit || st.code) unlink(wr->tmp);
    else if (rename(wr->tmp, wr->path) != 0) {
        unlink(wr->tmp);
        st = tsr_errorf(TSR_ERR_IO, "%s: cannot rename the finished file into place", wr->path);
    }
#else
    (void)commit;
#endif
    free(wr);
    return st;
}

tsr_status tsr_raster_write_mask(const char *path, const uint8_t *mask, int w, int h, const tsr_raster *ref) {
    if (is_png(path)) return tsr_png_write(path, mask, w, h, 1);
    tsr_raster_writer *wr;
    tsr_status st = tsr_raster_writer_open(&wr, path, w, h, ref);
    if (st.code) return st;
    st = tsr_raster_writer_put(wr, 0, 0, w, h, mask);
    tsr_status sc = tsr_raster_writer_close(wr, !st.code);
    return st.code ? st : sc;
}
