# Custom permissions for operator actions, and the indexes the admin filters and dashboard read.

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='outboundmessage',
            options={'ordering': ['-created_at', '-id'], 'permissions': [('resend_outboundmessage', 'Can resend a sent or failed message'), ('cancel_outboundmessage', 'Can cancel a message not yet sending'), ('send_now_outboundmessage', 'Can send a scheduled message now')]},
        ),
        migrations.AddIndex(
            model_name='outboundmessage',
            index=models.Index(fields=['instance', 'created_at'], name='msg_instance_created'),
        ),
        migrations.AddIndex(
            model_name='outboundmessage',
            index=models.Index(fields=['status', 'finished_at', 'last_error_kind'], name='msg_status_finished'),
        ),
    ]
