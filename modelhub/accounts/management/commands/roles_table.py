"""``python manage.py roles_table``: the README's role table, printed from the matrix."""

from django.core.management.base import BaseCommand

from modelhub.roles import markdown_table


class Command(BaseCommand):
    help = "Print the role/permission matrix as a Markdown table (the README's copy is tested against it)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(markdown_table())
