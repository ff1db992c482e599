#!/usr/bin/env python3
"""Optional outside check of `tessera narformer export`: every family's
exported network is loaded with the onnx package (Debian python3-onnx),
passed through onnx.checker (full check) and onnx.shape_inference, and the
inferred shape of every node output is compared with the shape tessera's
graph gives for it (`tessera narformer tokenize --json`).

    PYTHONPATH=<dir with onnx + google.protobuf> /usr/bin/python3 \
        tools/narformer_onnx_check.py build/tessera [seeds-per-family]

Exits 0 when all agree; 77 (skipped) when the onnx package is absent. Not
part of the test suite: the product does not need Python or onnx."""
import json, os, subprocess, sys, tempfile

try:
    import onnx
    from onnx import shape_inference
except ImportError:
    print("onnx package not available: skipped")
    sys.exit(77)

FAMILIES = ["resnet", "vgg", "mobilenetv2", "mobilenetv3", "mnasnet", "squeezenet",
            "googlenet", "alexnet", "efficientnet", "nb201"]


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "build/tessera"
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    bad = 0
    n_files = n_nodes = 0
    with tempfile.TemporaryDirectory() as d:
        for fam in FAMILIES:
            for seed in range(per):
                path = os.path.join(d, f"{fam}_{seed}.onnx")
                subprocess.run([exe, "narformer", "export", "--family", fam, "--net-seed", str(seed),
                                "--out", path], check=True, stdout=subprocess.DEVNULL)
                m = onnx.load(path)
                onnx.checker.check_model(m, full_check=True)
                inf = shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
                shapes = {}
                for vi in list(inf.graph.value_info) + list(inf.graph.output) + list(inf.graph.input):
                    shapes[vi.name] = [x.dim_value for x in vi.type.tensor_type.shape.dim]
                tok = json.loads(subprocess.run([exe, "narformer", "tokenize", path, "--json"], check=True,
                                                capture_output=True, text=True).stdout)
                outs = ["input"] + [n.output[0] for n in m.graph.node]
                if len(tok["nodes"]) != len(outs):
                    print(f"{fam}/{seed}: {len(tok['nodes'])} tessera nodes vs {len(outs)} ONNX values")
                    bad += 1
                    continue
                for name, node in zip(outs, tok["nodes"]):
                    if shapes.get(name) != node["shape"]:
                        print(f"{fam}/{seed}: {name}: onnx {shapes.get(name)} vs tessera {node['shape']}")
                        bad += 1
                n_files += 1
                n_nodes += len(outs)
    print(f"onnx {onnx.__version__}: {n_files} exported networks, {n_nodes} values: "
          f"checker passed, {bad} shape disagreements")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
