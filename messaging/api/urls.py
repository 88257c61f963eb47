from django.urls import path, re_path

from messaging.api import errors, metrics, views

urlpatterns = [
    path("", views.RootView.as_view(), name="root"),
    path("health", views.HealthView.as_view(), name="health"),
    path("messages", views.MessageListCreateView.as_view(), name="messages"),
    path("messages/bulk", views.MessageBulkCreateView.as_view(), name="messages-bulk"),
    path("messages/<int:message_id>", views.MessageDetailView.as_view(), name="message-detail"),
    re_path(r"^messages/(?P<message_id>[0-9]+)/(?P<action>cancel|resend|send-now)$", views.MessageActionView.as_view(),
            name="message-action"),
    path("tasks/<str:task_id>", views.TaskView.as_view(), name="task-detail"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("maintenance/requeue-stuck", views.RequeueStuckView.as_view(), name="maintenance-requeue-stuck"),
    # Last: whatever no route matched is the API's JSON 404, not Django's HTML page.
    re_path(r"^(?!admin(/|$)|static/)", errors.not_found),
]
