from django.urls import path

from messaging.api import metrics, views

urlpatterns = [
    path("", views.RootView.as_view(), name="root"),
    path("health", views.HealthView.as_view(), name="health"),
    path("messages", views.MessageListCreateView.as_view(), name="messages"),
    path("messages/bulk", views.MessageBulkCreateView.as_view(), name="messages-bulk"),
    path("messages/<int:message_id>", views.MessageDetailView.as_view(), name="message-detail"),
    path("tasks/<str:task_id>", views.TaskView.as_view(), name="task-detail"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
