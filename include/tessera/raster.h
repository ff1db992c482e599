/* tessera io: rasters with georeferencing — GeoTIFF (and anything else GDAL
 * reads) in and out through GDAL, PNG always. src/io/raster.c. GDAL is an
 * optional build dependency (libgdal-dev, found by pkg-config): without it
 * PNG works and every GeoTIFF call returns one clear error. With it, libgdal
 * is still not linked but loaded on the first GeoTIFF call (dlopen); if it
 * cannot be loaded then, that call returns one clear error. Used by apt. */
#ifndef TESSERA_RASTER_H
#define TESSERA_RASTER_H
#include "tessera/core.h"

/* largest raster read at once (pixels): bigger ones are read in windows
 * (tsr_raster_read_rgb_window; `apt segment` does so) or refused with a
 * hint to crop or tile them first */
#define TSR_RASTER_MAX_PIXELS ((int64_t)64 << 20)

typedef struct {
    int w, h, bands;        /* bands 1 (classes) or 3 (RGB) */
    uint8_t *px;            /* (h, w, bands) */
    bool georef;            /* gt and wkt are valid */
    double gt[6];           /* GDAL geotransform */
    char *wkt;              /* CRS, malloc'd (NULL without georef) */
} tsr_raster;

void tsr_raster_free(tsr_raster *r);
/* true when built with GDAL (whether libgdal loads is known on first use) */
bool tsr_raster_have_gdal(void);

/* An image as 8-bit RGB: PNG (grey expanded), or through GDAL any raster
 * with 1, 3 or more bands (the first three; non-byte bands are clamped to
 * 0..255). Georeferencing is kept when the file has it. */
tsr_status tsr_raster_read_rgb(const char *path, tsr_raster *r);
/* The window (x0, y0, w, h) of a raster read through GDAL, as 8-bit RGB
 * like tsr_raster_read_rgb, with the window's own georeferencing (its
 * origin moved to the window's corner); w = h = 0: the whole raster. For
 * rasters larger than TSR_RASTER_MAX_PIXELS, read window by window. */
tsr_status tsr_raster_read_rgb_window(const char *path, int x0, int y0, int w, int h, tsr_raster *r);
/* A raster's size, band count and georeferencing, without its pixels
 * (r->px stays NULL). */
tsr_status tsr_raster_probe(const char *path, tsr_raster *r);

/* A class map (one band, 8-bit codes) brought onto img's grid:
 *  - img georeferenced and the map has a CRS: reprojected and resampled by
 *    GDAL warp (nearest neighbour: class codes are categorical); pixels the
 *    map does not cover get 0. No overlap at all is an error.
 *  - otherwise the map must have img's size (a PNG/TIFF on the same grid).
 * *cls is malloc'd (img->w * img->h). */
tsr_status tsr_raster_classes_on_grid(const char *path, const tsr_raster *img, uint8_t **cls);
/* The same, but a georeferenced img the map does not overlap gets all 0
 * (for the windows of a huge image, some of which lie outside the map). */
tsr_status tsr_raster_classes_on_grid_any(const char *path, const tsr_raster *img, uint8_t **cls);

/* A window of a class map, decimated so its longer side is at most
 * max_side (mode resampling), for views of big tiles. bbox (minx, miny,
 * maxx, maxy in the map's CRS units) or NULL for the whole map. The
 * result carries the window's georeferencing. */
tsr_status tsr_raster_read_classes_window(const char *path, const double *bbox, int max_side, tsr_raster *r);

/* A mask (u8 0/1 -> 0/255 is NOT applied: values as given) written as a
 * one-band GeoTIFF with ref's georeferencing (none when ref has none), or
 * as PNG when path ends in .png. Atomic (path.tmp, rename). */
tsr_status tsr_raster_write_mask(const char *path, const uint8_t *mask, int w, int h, const tsr_raster *ref);

/* A one-band GeoTIFF mask written window by window (for images too large to
 * hold whole): open creates path.tmp (w x h, ref's georeferencing; internal
 * tiles above 16 Mpx), put writes a window, close(commit) renames it into
 * place, or with commit false (or after a failed write) removes it. */
typedef struct tsr_raster_writer tsr_raster_writer;
tsr_status tsr_raster_writer_open(tsr_raster_writer **wr, const char *path, int w, int h, const tsr_raster *ref);
tsr_status tsr_raster_writer_put(tsr_raster_writer *wr, int x0, int y0, int w, int h, const uint8_t *mask);
tsr_status tsr_raster_writer_close(tsr_raster_writer *wr, bool commit);

#endif
