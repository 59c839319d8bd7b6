"""The tour's settings and the URL presets of its links: a plain module (no Streamlit calls), shared by the tour
page (``views/tour.py``) and its tests. A link opens its page on exactly the figure the step showed: every
setting of that page that the tour fixes travels in the link's URL (the URL-bound widgets restore it).
"""
from widgets import default_markov_time

#: strong label skew on the committed Fashion-MNIST subset, one client seen through raw pixels (no model)
TOUR = dict(ds="fashion_mnist", part="dirichlet", alpha=0.1, clients=5, seed=0, client=0, model="pixels",
            nmax=1000, k=10, P=0.5, floor=0.0, layout="tsne", ndraw=300, mt=default_markov_time(), minc=0.02)
#: a page's own key for a tour setting (the prior page's client slider, the training page's α of the results)
ALIASES = {"pclient": "client", "ralpha": "alpha"}


def preset(*keys: str) -> dict:
    """URL parameters that open a page at the tour's values of ``keys`` (page keys; aliases allowed)."""
    out = {}
    for k in keys:
        v = TOUR[ALIASES.get(k, k)]
        out[k] = f"{v:g}" if isinstance(v, float) else str(v)
    return out


def tour_value(page_key: str):
    """The tour's value of a page's widget key, or None when the tour does not fix it."""
    return TOUR.get(ALIASES.get(page_key, page_key))
