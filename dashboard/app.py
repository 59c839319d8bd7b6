"""Federated Privacy Lab — the explorer. Run: ``streamlit run dashboard/app.py``.

One idea per page (TensorFlow Playground style); the tour (first, the default page) walks through them with a
link to each page at the matching preset. Pages are thin: widgets -> ``lab`` -> ``lab.viz`` figures.
Shared by the pages (``streamlit run`` puts this folder on the import path, so they import each other by name):
``widgets.py`` (settings bound to the URL), ``sidebar.py`` (data set, partition, client, model; uploads),
``loaders.py`` (cached calls into ``lab``), ``result_files.py`` (bench/results/ files), ``page.py`` (title,
settings line, presenter mode, footer, error boxes, figures, downloads).
"""
import streamlit as st

st.set_page_config(page_title="Federated Privacy Lab", page_icon=":material/hub:", layout="wide")

PAGES = {
    "Start here": [
        st.Page("views/tour.py", title="Tour", icon=":material/tour:", url_path="tour", default=True),
    ],
    "Federated category discovery": [
        st.Page("views/data_partitions.py", title="Data & partitions", icon=":material/grid_on:",
                url_path="data"),
        st.Page("views/similarity_graph.py", title="Similarity graph (CLSD)", icon=":material/share:",
                url_path="graph"),
        st.Page("views/communities.py", title="InfoMap communities", icon=":material/bubble_chart:",
                url_path="communities"),
        st.Page("views/prior_alignment.py", title="Prior alignment", icon=":material/bar_chart:",
                url_path="prior"),
        st.Page("views/training.py", title="Federated training", icon=":material/model_training:",
                url_path="training"),
    ],
    "User-level privacy": [
        st.Page("views/privacy_utility.py", title="Privacy–utility", icon=":material/lock:", url_path="privacy"),
    ],
}

st.navigation(PAGES).run()
