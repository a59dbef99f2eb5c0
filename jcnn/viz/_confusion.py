"""The confusion matrix of a trained run on its test split."""

from __future__ import annotations

import numpy as np

from jcnn.viz._figure import new_figure, save


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """``C[t, p]``: how many examples of true class `t` were predicted `p`."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def test_predictions(trained, batch_size: int = 500) -> np.ndarray:
    """Predicted classes of `trained`'s test split (eval logits, as ``jcnn eval``)."""
    import jax

    logits_fn = jax.jit(trained.logits)
    preds = []
    n = int(trained.images.shape[0])
    for start in range(0, n, batch_size):
        x = trained.normalize(trained.images[start : start + batch_size])
        preds.append(np.asarray(logits_fn(x)).argmax(axis=1))
    return np.concatenate(preds)


def plot_confusion(trained, out, *, figsize=(7.5, 6.5), dpi: int = 100):
    """Rows: true class, columns: predicted, each row shaded by its fraction
    and annotated with its count; `trained` is a `jcnn.interop.Trained` or a
    workdir. The title gives the accuracy (the trace over the total).
    Returns the PNG path."""
    from jcnn.interop import load_trained

    if not hasattr(trained, "variables"):
        trained = load_trained(trained)
    labels = np.asarray(trained.labels)
    k = len(trained.class_names)
    matrix = confusion_matrix(labels, test_predictions(trained), k)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = new_figure(figsize, dpi, "plot_confusion")
    ax = fig.subplots()
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for t in range(k):
        for p in range(k):
            if matrix[t, p]:
                ax.text(
                    p,
                    t,
                    str(matrix[t, p]),
                    ha="center",
                    va="center",
                    fontsize="x-small",
                    color="white" if rows[t, p] > 0.5 else "black",
                )
    ax.set_xticks(range(k), trained.class_names, rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(k), trained.class_names, fontsize="small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    accuracy = np.trace(matrix) / matrix.sum()
    ax.set_title(
        f"{trained.config.model.name} on {trained.dataset} test ({matrix.sum()} images, "
        f"step {trained.step}): accuracy {accuracy:.4f}",
        fontsize="small",
    )
    return save(fig, out)
