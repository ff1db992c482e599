# ovadetr: are the box shapes the limit for the validation buses of `strict`?
# (docs/ovadetr.md, "Choosing on the validation images of strict"). No
# training and no test image: the validation images (DOTA P1888, iSAID P0003,
# P0005: school buses as "large vehicle") and the strict training boxes.
#
# 1. The true bus boxes: long side, short side, aspect (long/short), sqrt(area).
# 2. The training boxes of `strict` that could teach a long-vehicle shape:
#    iSAID P0004's large vehicles (boxes and, if 6..120 px, copy-paste chips),
#    and for scale the cars and small vehicles. Shape cover: for each bus, the
#    best IoU of its box against a training large-vehicle box of the same
#    centre, over the crop scales of training (0.8..1.25) and both
#    orientations (the 90-degree rotations); >= 0.5 means "a training box of
#    that shape exists".
# 3. The model's boxes on the validation images: one `detect` per image with
#    the eight protocol names, every detection >= 0.001 (any name). For each
#    bus the detection of best IoU; for buses whose best IoU is in [0.3, 0.5)
#    the ratio of that box's long side, short side and area to the bus's, and
#    the IoU the same box would reach with the bus's size at its own centre
#    (size fixed, place kept) and at the bus's centre (place fixed, size kept).
# Run from the repository root:
#   /usr/bin/python3 tools/ovadetr_shape_probe.py MODEL [build/tessera]
import json, os, subprocess, sys, tempfile
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ovadetr_val_probe import D, NAMES, dota_boxes, isaid_boxes, iou  # noqa: E402


def shape(b):
    w, h = b[2] - b[0], b[3] - b[1]
    return max(w, h), min(w, h)


def centred_iou(w1, h1, w2, h2):
    I = min(w1, w2) * min(h1, h2)
    return I / (w1 * h1 + w2 * h2 - I)


def stats(v):
    v = np.asarray(v, float)
    return {'n': int(len(v)), 'p10': round(float(np.percentile(v, 10)), 2), 'median': round(float(np.median(v)), 2),
            'p90': round(float(np.percentile(v, 90)), 2)}


def describe(boxes):
    L = [shape(b)[0] for b in boxes]
    S = [shape(b)[1] for b in boxes]
    return {'long': stats(L), 'short': stats(S), 'aspect': stats(np.array(L) / np.maximum(S, 1e-6)),
            'sqrt_area': stats(np.sqrt(np.array(L) * np.array(S)))}


def main(model, BIN):
    val = [('P1888', D + '/dota-samples/P1888.png', dota_boxes(D + '/dota-samples/P1888.txt', 'large-vehicle')),
           ('P0003', D + '/aerial/isaid/val/images/P0003.png', isaid_boxes('P0003', 'val')),
           ('P0005', D + '/aerial/isaid/train/images/P0005.png', isaid_boxes('P0005', 'train'))]
    buses = [g for _, _, gt in val for g in gt]
    lv = isaid_boxes('P0004', 'val')
    sv = isaid_boxes('P0004', 'val', want=(0, 0, 127))
    chips = [b for b in lv if 6 <= b[2] - b[0] <= 120 and 6 <= b[3] - b[1] <= 120]
    out = {'model': model, 'val_bus': describe(buses), 'train_large_vehicle_P0004': describe(lv),
           'train_lv_chips': len(chips), 'train_small_vehicle_P0004': describe(sv)}
    # 2. shape cover by the training large vehicles (scale jitter, both orientations)
    cover = []
    for g in buses:
        gw, gh = g[2] - g[0], g[3] - g[1]
        best = 0
        for t in lv:
            tw, th = t[2] - t[0], t[3] - t[1]
            for s in (0.8, 0.9, 1.0, 1.1, 1.25):
                best = max(best, centred_iou(gw, gh, tw * s, th * s), centred_iou(gw, gh, th * s, tw * s))
        cover.append(best)
    cover = np.array(cover)
    out['train_shape_cover'] = {'ge_0.5': round(float(np.mean(cover >= 0.5)), 3), 'ge_0.7': round(float(np.mean(cover >= 0.7)), 3),
                                'median': round(float(np.median(cover)), 3)}
    # 3. the model's boxes
    tmp = tempfile.mkdtemp()
    best_iou, near = [], []
    pred = []
    for stem, png, gt in val:
        o = os.path.join(tmp, stem + '.json')
        subprocess.run([BIN, 'ovadetr', 'detect', '--model', model, '--image', png, '--classes', ','.join(NAMES),
                        '--out', o, '--max-det', '100000', '--min-score', '0.001', '--threads', '1'],
                       check=True, capture_output=True)
        d = json.load(open(o))
        dets = [(a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]) for a in d['annotations']]
        pred += dets
        for g in gt:
            ious = [iou(x, g) for x in dets]
            k = int(np.argmax(ious)) if ious else -1
            bi = ious[k] if ious else 0
            best_iou.append(bi)
            if 0.3 <= bi < 0.5:
                x = dets[k]
                pL, pS = shape(x)
                gL, gS = shape(g)
                gw, gh = g[2] - g[0], g[3] - g[1]
                pcx, pcy = (x[0] + x[2]) / 2, (x[1] + x[3]) / 2
                gcx, gcy = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2
                size_fixed = iou((pcx - gw / 2, pcy - gh / 2, pcx + gw / 2, pcy + gh / 2), g)
                pw, ph = x[2] - x[0], x[3] - x[1]
                place_fixed = iou((gcx - pw / 2, gcy - ph / 2, gcx + pw / 2, gcy + ph / 2), g)
                near.append((pL / gL, pS / gS, pL * pS / (gL * gS), size_fixed, place_fixed,
                             (pw >= ph) == (gw >= gh)))
    best_iou = np.array(best_iou)
    out['pred_boxes'] = describe(pred)
    out['bus_best_iou'] = {'ge_0.5': round(float(np.mean(best_iou >= 0.5)), 3), 'ge_0.3': round(float(np.mean(best_iou >= 0.3)), 3),
                           'median': round(float(np.median(best_iou)), 3)}
    if near:
        n = np.array(near, float)
        out['near_misses'] = {'n': len(near), 'long_ratio': stats(n[:, 0]), 'short_ratio': stats(n[:, 1]), 'area_ratio': stats(n[:, 2]),
                              'iou_if_bus_size': stats(n[:, 3]), 'iou_if_bus_centre': stats(n[:, 4]),
                              'same_orientation': round(float(np.mean(n[:, 5])), 3)}
    # share of predicted boxes at least as long (in pixels) as the median bus, and as elongated
    pl = np.array([shape(b)[0] for b in pred]); ps = np.array([shape(b)[1] for b in pred])
    bl = np.median([shape(b)[0] for b in buses])
    out['pred_long_ge_median_bus'] = round(float(np.mean(pl >= bl)), 4)
    out['pred_aspect_ge_2'] = round(float(np.mean(pl / np.maximum(ps, 1e-6) >= 2)), 4)
    return out


if __name__ == '__main__':
    print(json.dumps(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else 'build/tessera')))
