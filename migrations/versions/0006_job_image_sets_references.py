"""jobs with an image set: exemplar shards, min/max references with diversity

Jobs gain their image set (set to empty if the set is removed), the number of references per
sign, the diversity weight (empty: searched per direction) and the query percentile. Shards gain
a kind (existing rows `render`) and, for `exemplars` shards, the layer they score. Directions
gain how many source-disjoint 2-AFC tasks their set allows; stimuli the diversity weight they
were rendered with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_set_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('n_references', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('diversity', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('query_percentile', sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_image_set_id'), ['image_set_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_jobs_image_set_id_image_sets'), 'image_sets',
                                    ['image_set_id'], ['id'], ondelete='SET NULL')
        batch_op.create_check_constraint(op.f('ck_jobs_n_references'),
                                         'n_references IS NULL OR n_references >= 1')
        batch_op.create_check_constraint(op.f('ck_jobs_diversity'),
                                         'diversity IS NULL OR diversity >= 0')
        batch_op.create_check_constraint(
            op.f('ck_jobs_query_percentile'),
            'query_percentile IS NULL OR (query_percentile > 50 AND query_percentile < 100)')

    with op.batch_alter_table('shards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=10), server_default='render',
                                      nullable=False))
        batch_op.add_column(sa.Column('layer', sa.String(length=200), nullable=True))
        batch_op.create_check_constraint(op.f('ck_shards_kind'), "kind IN ('render', 'exemplars')")
        batch_op.create_check_constraint(op.f('ck_shards_layer_for_exemplars'),
                                         "(kind = 'exemplars') = (layer IS NOT NULL)")

    with op.batch_alter_table('directions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tasks_available', sa.Integer(), nullable=True))

    with op.batch_alter_table('stimuli', schema=None) as batch_op:
        batch_op.add_column(sa.Column('diversity', sa.Float(), nullable=True))


def downgrade() -> None:
    """Downgrade schema (exemplar shards are deleted with their kind)."""
    with op.batch_alter_table('stimuli', schema=None) as batch_op:
        batch_op.drop_column('diversity')

    with op.batch_alter_table('directions', schema=None) as batch_op:
        batch_op.drop_column('tasks_available')

    op.execute("DELETE FROM shards WHERE kind = 'exemplars'")
    with op.batch_alter_table('shards', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_shards_layer_for_exemplars'), type_='check')
        batch_op.drop_constraint(op.f('ck_shards_kind'), type_='check')
        batch_op.drop_column('layer')
        batch_op.drop_column('kind')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_jobs_query_percentile'), type_='check')
        batch_op.drop_constraint(op.f('ck_jobs_diversity'), type_='check')
        batch_op.drop_constraint(op.f('ck_jobs_n_references'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_jobs_image_set_id_image_sets'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_jobs_image_set_id'))
        batch_op.drop_column('query_percentile')
        batch_op.drop_column('diversity')
        batch_op.drop_column('n_references')
        batch_op.drop_column('image_set_id')
