from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [("catalog", "0003_postgres_trigram_name")]

    operations = [
        migrations.CreateModel(
            name="ModelDependent",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("model", models.ForeignKey(on_delete=models.PROTECT, related_name="+", to="catalog.modelregistry")),
            ],
        ),
    ]
