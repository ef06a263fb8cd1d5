"""The classify report's t-SNE map at scikit-learn's 1,000 iterations and at fewer: seconds, and how well the map
keeps the classes apart (5-nearest-neighbour accuracy on the map, cross-validated, and the silhouette), on 1,000 of
scikit-learn's 8x8 digits.

    .venv/bin/python benchmarks/tsne_iterations.py --iterations 1000 500 350
"""
import argparse
import time

from sklearn.datasets import load_digits
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--iterations", type=int, nargs="+", default=[1000, 500, 350])
a = p.parse_args()
x, y = load_digits(return_X_y=True)
x, y = x[:1000] / 16, y[:1000]
print("| iterations | seconds | kNN accuracy on the map | silhouette |\n|---|---|---|---|")
for it in a.iterations:
    t = time.perf_counter()
    xy = TSNE(2, init="pca", perplexity=30, random_state=0, max_iter=it).fit_transform(x)
    s = time.perf_counter() - t
    knn = cross_val_score(KNeighborsClassifier(5), xy, y, cv=5).mean()
    print(f"| {it} | {s:.2f} | {knn:.3f} | {silhouette_score(xy, y):.3f} |")
