"""Every plotly figure of the lab, built once here and shown by notebooks and dashboard alike.

Figures take plain data (numpy arrays, lists, dicts from result JSON), never models.
"""
