"""Classification metrics as pure numpy functions (no sklearn needed, easy to test by hand).

Conventions: y_true / y_pred are int arrays, probs is (N, K) with rows summing to 1, confusion rows are
TRUE classes and columns PREDICTED classes. Undefined ratios (0/0) are reported as 0.
"""

import numpy as np


def confusion_matrix(y_true, y_pred, k):
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def _safe_div(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def per_class_prf(cm):
    """precision, recall, f1, support per class from a confusion matrix (rows true)."""
    tp = np.diag(cm).astype(np.float64)
    precision = _safe_div(tp, cm.sum(0))
    recall = _safe_div(tp, cm.sum(1))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return precision, recall, f1, cm.sum(1)


def accuracy(cm):
    return float(np.trace(cm) / max(cm.sum(), 1))


def log_loss(probs, y_true, eps=1e-12):
    p = np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0)
    return float(-np.log(p).mean())


def ece(probs, y_true, n_bins=15):
    """Expected calibration error with equal-width confidence bins (top-1 confidence)."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    # Bin i holds conf in (edges[i], edges[i+1]]; conf == 0 is impossible for a softmax so nothing is lost.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def binary_auc(scores, positive):
    """ROC AUC via the Mann-Whitney U statistic with average ranks for ties."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores)[order]
    ranks = np.empty(len(s), np.float64)
    i = 0
    while i < len(s):  # average ranks over runs of equal scores
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_ovr_macro(probs, y_true):
    """Mean one-vs-rest ROC AUC over classes present in y_true."""
    aucs = [binary_auc(probs[:, c], y_true == c) for c in range(probs.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def softmax(logits, temperature=1.0):
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit_temperature(logits, y_true, grid=None):
    """Temperature minimising NLL; a 1-D problem, so a fine grid search is exact enough and can't diverge."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 401)) if grid is None else grid
    nll = [log_loss(softmax(logits, t), y_true) for t in grid]
    return float(grid[int(np.argmin(nll))])


def summarize(probs, y_true, labels):
    """All headline metrics as a JSON-ready dict."""
    y_true = np.asarray(y_true)
    k = len(labels)
    y_pred = probs.argmax(1)
    cm = confusion_matrix(y_true, y_pred, k)
    p, r, f, s = per_class_prf(cm)
    return {
        "n": int(len(y_true)),
        "accuracy": accuracy(cm),
        "macro_precision": float(p.mean()),
        "macro_recall": float(r.mean()),
        "macro_f1": float(f.mean()),
        "auc_ovr_macro": auc_ovr_macro(probs, y_true),
        "loss": log_loss(probs, y_true),
        "ece": ece(probs, y_true, 15),
        "per_class": {
            labels[c]: {
                "precision": float(p[c]),
                "recall": float(r[c]),
                "f1": float(f[c]),
                "support": int(s[c]),
            }
            for c in range(k)
        },
        "confusion": cm.tolist(),
    }


def plot_confusion(cm, labels, path, normalize=True):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{shown[i, j]:.2f}\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shown[i, j] > 0.5 * shown.max() else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion (row-normalised)" if normalize else "confusion")
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
