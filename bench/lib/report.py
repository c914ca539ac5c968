"""Shared reporting for bench/scenarios: load llmgw-bench JSON, medians, a fixed-width
table on stdout, a summary JSON and a gnuplot PNG in the scenario's results dir."""
import json
import os
import statistics
import subprocess


def load(path):
    with open(path) as f:
        return json.load(f)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{nd}f}"


def table(headers, rows, nd=1):
    cells = [[fmt(c, nd) for c in r] for r in rows]
    w = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(headers))
    out = [line, "-" * len(line)]
    for r in cells:
        out.append("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
    text = "\n".join(out)
    print(text)
    return text


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def plot(png, script, data_files):
    """Runs gnuplot with `script` (data file names refer to the results dir). Never fails
    the scenario: a missing gnuplot only costs the picture."""
    d = os.path.dirname(png)
    for name, text in data_files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    full = f'set terminal pngcairo size 1000,600 noenhanced\nset output "{png}"\nset grid\n' + script
    try:
        subprocess.run(["gnuplot"], input=full.encode(), cwd=d, check=True, capture_output=True)
    except Exception:
        try:  # gnuplot-nox may lack cairo: plain png terminal
            full = full.replace("pngcairo", "png", 1)
            subprocess.run(["gnuplot"], input=full.encode(), cwd=d, check=True, capture_output=True)
        except Exception as e:
            print(f"(plot skipped: {e})")
