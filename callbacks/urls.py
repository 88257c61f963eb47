from django.urls import path

from callbacks import api

urlpatterns = [
    path("callbacks", api.CallbackListView.as_view(), name="callbacks"),
    path("messages/<int:message_id>/callbacks", api.MessageCallbacksView.as_view(), name="message-callbacks"),
]
