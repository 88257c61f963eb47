"""The admin site as an operator meets it."""
from django.contrib import admin

admin.site.site_header = "WhatsApp messaging console"
admin.site.site_title = "WhatsApp console"
admin.site.index_title = "Operator console"
