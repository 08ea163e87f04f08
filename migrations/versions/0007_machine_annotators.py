"""machine annotators: the `machine` annotator source, the fitted lapse rate, answers without a page time

Annotators may come from `machine` (`fvlab machine rate`). Studies gain the machine
annotator's lapse rate fitted beside its α (nullable, within [0, 1]) and the embedding α was
fitted with (α is on that embedding's similarity scale). A rating's page response
time may be empty: the machine annotator's answers have none.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OLD_SOURCES = "source IN ('prolific', 'mturk', 'anonymous', 'lab')"
NEW_SOURCES = "source IN ('prolific', 'mturk', 'anonymous', 'lab', 'machine')"


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('annotators', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_annotators_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_annotators_source'), NEW_SOURCES)

    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('machine_lapse', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('machine_embedding', sa.String(length=100), nullable=True))
        batch_op.create_check_constraint(op.f('ck_studies_machine_lapse'),
                                         'machine_lapse IS NULL OR machine_lapse BETWEEN 0 AND 1')

    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.alter_column('rt_ms', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    """Downgrade schema (refused by the database while machine annotators or their answers
    exist)."""
    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.alter_column('rt_ms', existing_type=sa.Integer(), nullable=False)

    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_studies_machine_lapse'), type_='check')
        batch_op.drop_column('machine_embedding')
        batch_op.drop_column('machine_lapse')

    with op.batch_alter_table('annotators', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_annotators_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_annotators_source'), OLD_SOURCES)
