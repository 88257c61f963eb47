"""The sent-vs-failed bar chart's geometry, drawn as inline SVG by the template (no JavaScript, no CDN)."""
from collections.abc import Callable
from datetime import datetime, timedelta

from messaging.dashboard.queries import HourBucket

CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_BOTTOM = 720, 200, 40, 24


def hourly_chart(buckets: list[HourBucket], *, link: Callable[[str, datetime, datetime], str]) -> dict:
    """Bars, labels and totals for ``buckets``; ``link(status, start, end)`` is where a bar leads."""
    plot_height = CHART_HEIGHT - CHART_BOTTOM - 8
    peak = max([max(b.sent, b.failed) for b in buckets] + [1])
    slot = (CHART_WIDTH - CHART_LEFT) / max(len(buckets), 1)
    bar = max(slot / 2 - 2, 1)
    bars, labels = [], []
    for index, bucket in enumerate(buckets):
        x = CHART_LEFT + index * slot
        end = bucket.start + timedelta(hours=1)
        for offset, status, count in ((1, "sent", bucket.sent), (1 + bar, "failed", bucket.failed)):
            height = round(plot_height * count / peak, 1)
            bars.append({
                "x": round(x + offset, 1), "y": round(8 + plot_height - height, 1), "width": round(bar, 1),
                "height": height, "status": status, "count": count,
                "title": f"{bucket.start:%H:00}–{end:%H:00}: {count} {status}",
                "url": link(status, bucket.start, end),
            })
        if index % 3 == 0:
            labels.append({"x": round(x + slot / 2, 1), "text": f"{bucket.start:%H}h"})
    return {
        "width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT, "baseline": CHART_HEIGHT - CHART_BOTTOM,
        "label_y": CHART_HEIGHT - 8, "peak": peak, "bars": bars, "labels": labels,
        "total_sent": sum(b.sent for b in buckets), "total_failed": sum(b.failed for b in buckets),
    }
