# ovadetr: the P1888 check (docs/ovadetr.md). DOTA P1888 is a training
# image whose 50 large vehicles are parked buses; no test image is used.
# One detect forward with the eight protocol names, then recall (IoU 0.5)
# of the large-vehicle boxes scored like the test: only car, minibus and one
# more name kept, their best 100 counted. Run from the repository root:
#   /usr/bin/python3 tools/ovadetr_p1888_check.py MODEL [build/tessera]
import json, os, subprocess, sys, tempfile
model = sys.argv[1]
BIN = sys.argv[2] if len(sys.argv) > 2 else 'build/tessera'
out = os.path.join(tempfile.mkdtemp(), 'p1888.json')
subprocess.run([BIN, 'ovadetr', 'detect', '--model', model,
                '--image', '../shared/data/dota-samples/P1888.png', '--classes',
                'car,ship,plane,storage tank,small vehicle,large vehicle,bus,minibus', '--out', out,
                '--max-det', '5000', '--min-score', '0.001', '--threads', '1'], check=True, capture_output=True)
d = json.load(open(out))
cats = {c['id']: c['name'] for c in d['categories']}
ann = d['annotations']
gt = []
for l in open('../shared/data/dota-samples/P1888.txt'):
    t = l.split()
    if len(t) < 9 or t[8] != 'large-vehicle': continue
    xs = list(map(float, t[0:8:2])); ys = list(map(float, t[1:8:2]))
    gt.append((min(xs), min(ys), max(xs), max(ys)))
def iou(a, b):
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0])); ih = max(0, min(a[3], b[3]) - max(a[1], b[1])); I = iw * ih
    return I / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - I)
def recall(name, kept):
    # the test's scoring: only the kept names' detections, best 100 of them
    ds = sorted([a for a in ann if cats[a['category_id']] in kept], key=lambda a: -a['score'])[:100]
    ds = [a for a in ds if cats[a['category_id']] == name]
    used = [0] * len(gt); hit = 0
    for a in ds:
        x, y, w, h = a['bbox']; b = (x, y, x + w, y + h); best = -1; bi = 0.5
        for j, g in enumerate(gt):
            v = iou(b, g)
            if not used[j] and v >= bi: bi = v; best = j
        if best >= 0: used[best] = 1; hit += 1
    return hit / len(gt)
print(json.dumps({'model': model,
                  'bus_recall_on_lv': round(recall('bus', {'car', 'bus', 'minibus'}), 4),
                  'lv_recall_as_lv': round(recall('large vehicle', {'car', 'large vehicle', 'minibus'}), 4),
                  'bus_alone': round(recall('bus', {'bus'}), 4)}))
