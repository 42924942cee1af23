-- The likes of given posts, for the ranked feed's social proof: the likers of a page's candidates
-- are found per candidate post (and checked against the viewer's follows), not by reading every
-- followee's likes. The primary key (user_id, post_id) serves only the other direction.
CREATE INDEX likes_by_post ON likes (post_id, user_id);
