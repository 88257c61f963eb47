"""The sending dashboard: how sending is going, every figure a link to the messages behind it.

- queries.py: the reads only the dashboard makes (counts by window, sent vs failed per hour, failure reasons);
  what is waiting right now comes from messaging.selectors (shared with /metrics), instance states from
  evolution.instances;
- chart.py: the geometry of the hourly bar chart (inline SVG, drawn by the template);
- views.py: the admin page that puts them together.
"""
